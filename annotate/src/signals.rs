//! Read the signals segmentation needs from a recorded episode (joints, gripper, wrench,
//! fingertip touch), decoding only their chunks, with checked CDR decoding.

use crate::read::read_selected;
use crate::segment::Signals;
use hal::msgs::{JointState, TactileArray, WrenchStamped};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which topics and joints carry the signals. Defaults follow the simulator and
/// `shared/design/conventions.md`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SignalConfig {
    pub joint_topic: String,
    /// The arm's joints in kinematic order.
    pub arm_joints: Vec<String>,
    /// The gripper finger joint; the opening is `gripper_scale` × its position.
    pub gripper_joint: String,
    pub gripper_scale: f64,
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
            gripper_scale: 2.0,
            wrench_topic: "/wrist/right/wrench".into(),
            tactile_topics: vec!["/tactile/right_a_tip".into(), "/tactile/right_b_tip".into()],
            contact_kpa: 0.5,
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(data: &[u8]) -> Option<T> {
    if data.len() < 4 || data[1] != 1 {
        return None; // only little-endian CDR
    }
    cdr_encoding::from_bytes::<T, byteorder::LittleEndian>(&data[4..])
        .ok()
        .map(|(v, _)| v)
}

/// Signals of `path`, with times in seconds from `start_ns` (the episode start from its
/// metadata, else the first message). Returns them and the episode start.
pub fn read_signals(path: &Path, cfg: &SignalConfig) -> anyhow::Result<(Signals, u64)> {
    let want = |topic: &str, _: &str| {
        topic == cfg.joint_topic
            || topic == cfg.wrench_topic
            || cfg.tactile_topics.iter().any(|t| t == topic)
    };
    let sel = read_selected(path, want)?;
    let joints = sel.by_topic(&cfg.joint_topic);
    if joints.is_empty() {
        anyhow::bail!(
            "{}: no messages on {} (needed for segmentation)",
            path.display(),
            cfg.joint_topic
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
    let mut idx: Option<(Vec<usize>, usize)> = None;
    let mut bad = 0usize;
    for m in joints {
        let Some(js) = decode::<JointState>(&m.data) else {
            bad += 1;
            continue;
        };
        if idx.is_none() {
            let find = |n: &str| js.name.iter().position(|x| x == n);
            let arm: Option<Vec<usize>> = cfg.arm_joints.iter().map(|n| find(n)).collect();
            match (arm, find(&cfg.gripper_joint)) {
                (Some(a), Some(g)) if a.len() == 7 => idx = Some((a, g)),
                _ => anyhow::bail!(
                    "{}: {} lacks the configured arm or gripper joints",
                    path.display(),
                    cfg.joint_topic
                ),
            }
        }
        let (a, g) = idx.as_ref().expect("set above");
        if js.position.len() <= *a.iter().max().unwrap_or(&0) || js.position.len() <= *g {
            bad += 1;
            continue;
        }
        s.t.push(rel(m.header.log_time));
        s.q.push(std::array::from_fn(|k| js.position[a[k]]));
        s.aperture.push(cfg.gripper_scale * js.position[*g]);
    }
    // joint messages in time order (chunks may interleave slightly)
    let mut order: Vec<usize> = (0..s.t.len()).collect();
    order.sort_by(|&x, &y| s.t[x].total_cmp(&s.t[y]));
    s.t = order.iter().map(|&i| s.t[i]).collect();
    s.q = order.iter().map(|&i| s.q[i]).collect();
    s.aperture = order.iter().map(|&i| s.aperture[i]).collect();
    let w = sel.by_topic(&cfg.wrench_topic);
    if !w.is_empty() {
        let mut rows: Vec<(f64, [f64; 6])> = w
            .iter()
            .filter_map(|m| {
                let x = decode::<WrenchStamped>(&m.data)?;
                let f = x.wrench;
                Some((
                    rel(m.header.log_time),
                    [
                        f.force.x, f.force.y, f.force.z, f.torque.x, f.torque.y, f.torque.z,
                    ],
                ))
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
                let Some(ta) = decode::<TactileArray>(&m.data) else {
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
    Ok((s, start))
}
