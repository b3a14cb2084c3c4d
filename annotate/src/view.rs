//! `demotape view`: an episode in Rerun (0.36, SDK only; the edge recorder never links it).
//!
//! Timelines: `capture_time` (the synchronized reference clock: each message's MCAP
//! `log_time`) and `frame` (the index of the message on its own stream). Entities:
//! - `camera/<name>/rgb` (Image), `camera/<name>/depth` (DepthImage, meter = 1000 for 16UC1 mm)
//! - `joints/<joint>/{position,velocity,effort}` (Scalars)
//! - `world/arm` (link polyline from forward kinematics), `world/arm/ee` (Transform3D of the
//!   tool), `world/arm/ee/gripper` (finger segments at the measured aperture),
//!   `world/force` (the right wrist's force as an arrow at the tool, 1 cm per N, in the
//!   sensor's axes) — at the joint rate decimated to 30 Hz
//! - `wrench/<side>/{force_x..torque_z}` (Scalars)
//! - `tactile/<pad>` (DepthImage heatmap, kPa, Viridis)
//! - `events` (TextLog: drops, gaps, resets, stop reason), `sync/<device>/latency_ms` (Scalars:
//!   host receive − mapped capture time per clock observation)
//! - `annotations/phases`, `annotations/outcome` (TextLog at each boundary, effective
//!   human-over-auto labels) and `annotations/phase_index` (Scalars step series)
//!
//! The file is streamed chunk by chunk in time order: memory is bounded by one chunk, not by
//! the episode's length.

use crate::lerobot::cdr::decode;
use crate::lerobot::export::load_labels;
use crate::read::{chunk_messages, read_chunk, read_summary};
use hal::kinematics::ArmModel;
use hal::msgs::{
    ClockObservations, CompressedImage, EpisodeEvent, Image, JointState, TactileArray,
    WrenchStamped,
};
use std::collections::BTreeMap;
use std::path::Path;

/// Where the recording goes.
pub enum Sink<'a> {
    Save(&'a Path),
    Spawn,
    Connect(String),
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ViewReport {
    pub messages: u64,
    /// Rows logged per entity path.
    pub rows: BTreeMap<String, u64>,
    pub skipped: u64,
    pub duration_s: f64,
    pub seconds: f64,
}

const TIMELINE: &str = "capture_time";
/// Arm drawing rate (Hz): joint states arrive at 500 Hz; 30 Hz is enough to see the motion.
const ARM_HZ: u64 = 30;

struct Ctx {
    rec: rerun::RecordingStream,
    report: ViewReport,
    arm: ArmModel,
    arm_joints: Vec<String>,
    gripper_joint: String,
    last_arm_ns: u64,
    frames: BTreeMap<u16, i64>,
    joint_idx: Option<(Vec<usize>, Option<usize>)>,
    last_force: Option<[f64; 3]>,
}

impl Ctx {
    fn log<A: rerun::AsComponents + ?Sized>(&mut self, path: &str, a: &A) -> anyhow::Result<()> {
        self.rec.log(path, a)?;
        *self.report.rows.entry(path.to_string()).or_default() += 1;
        Ok(())
    }
}

/// Convert `path` (and its labels, when `demotape annotate` wrote them) into Rerun.
pub fn view(
    path: &Path,
    sink: Sink<'_>,
    labels_dir: Option<&Path>,
    progress: bool,
) -> anyhow::Result<ViewReport> {
    let started = std::time::Instant::now();
    let summary = read_summary(path)?;
    let meta = summary.sel.metadata.clone();
    let channels = summary.sel.channels.clone();
    let schemas = summary.sel.schemas.clone();
    let id = meta
        .get("demotape.episode")
        .and_then(|m| m.get("episode_id"))
        .cloned()
        .unwrap_or_else(|| path.display().to_string());
    let builder = rerun::RecordingStreamBuilder::new("demotape").recording_name(id);
    let rec = match sink {
        Sink::Save(p) => builder.save(p)?,
        Sink::Spawn => builder.spawn()?,
        Sink::Connect(url) => builder.connect_grpc_opts(url)?,
    };
    let cfg = crate::signals::SignalConfig::default();
    let mut cx = Ctx {
        rec,
        report: ViewReport::default(),
        arm: ArmModel::sim_default("right_arm_"),
        arm_joints: cfg.arm_joints.clone(),
        gripper_joint: cfg.gripper_joint.clone(),
        last_arm_ns: 0,
        frames: BTreeMap::new(),
        joint_idx: None,
        last_force: None,
    };
    // annotation layers first (they are small)
    let labels = load_labels(path, labels_dir, &meta)?;
    for (i, (phase, a, _)) in labels.phases.iter().enumerate() {
        cx.rec.set_timestamp_nanos_since_epoch(TIMELINE, *a as i64);
        cx.log(
            "annotations/phases",
            &rerun::TextLog::new(format!("{phase} ({})", labels.source)).with_level("INFO"),
        )?;
        let idx = crate::lerobot::PHASES
            .iter()
            .position(|p| p == phase)
            .map_or(-1.0, |x| x as f64);
        cx.log("annotations/phase_index", &rerun::Scalars::single(idx))?;
        if i + 1 == labels.phases.len() {
            cx.rec
                .set_timestamp_nanos_since_epoch(TIMELINE, labels.phases[i].2 as i64);
            cx.log("annotations/phase_index", &rerun::Scalars::single(idx))?;
        }
    }
    if let (Some(o), Some(last)) = (&labels.outcome, labels.phases.last()) {
        cx.rec
            .set_timestamp_nanos_since_epoch(TIMELINE, last.1 as i64);
        cx.log(
            "annotations/outcome",
            &rerun::TextLog::new(format!("outcome: {o} ({})", labels.source))
                .with_level(if o == "success" { "INFO" } else { "WARN" }),
        )?;
    }
    let crate::read::Summary {
        mut file,
        len,
        mut chunk_index,
        ..
    } = summary;
    chunk_index.sort_by_key(|c| (c.message_start_time, c.chunk_start_offset));
    let (mut t_min, mut t_max) = (u64::MAX, 0u64);
    let bar = if progress {
        indicatif::ProgressBar::new(chunk_index.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut raw = Vec::new();
    for ci in &chunk_index {
        let plain = read_chunk(path, &mut file, len, ci, &mut raw)?;
        for m in chunk_messages(path, ci, &plain) {
            let m = m?;
            let (ch, t) = (m.channel, m.log_time);
            let Some(c) = channels.get(&ch) else { continue };
            let schema = schemas.get(&c.schema_id).map_or("", String::as_str);
            t_min = t_min.min(t);
            t_max = t_max.max(t);
            cx.report.messages += 1;
            let frame = {
                let f = cx.frames.entry(ch).or_default();
                *f += 1;
                *f - 1
            };
            cx.rec.set_timestamp_nanos_since_epoch(TIMELINE, t as i64);
            cx.rec.set_time_sequence("frame", frame);
            if let Err(e) = message(&mut cx, &c.topic, schema, t, m.data) {
                cx.report.skipped += 1;
                tracing::debug!(topic = %c.topic, "skipped: {e}");
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    cx.rec.flush_blocking()?;
    if t_max > t_min {
        cx.report.duration_s = (t_max - t_min) as f64 / 1e9;
    }
    cx.report.seconds = started.elapsed().as_secs_f64();
    Ok(cx.report)
}

fn name_of(topic: &str, prefix: &str, suffix: &str) -> String {
    crate::lerobot::sanitize(
        topic
            .trim_start_matches(prefix)
            .trim_end_matches(suffix)
            .trim_matches('/'),
    )
}

fn message(cx: &mut Ctx, topic: &str, schema: &str, t: u64, data: &[u8]) -> anyhow::Result<()> {
    let e = |s: String| anyhow::anyhow!(s);
    match schema {
        "sensor_msgs/msg/Image" => {
            let img: Image = decode(data).map_err(e)?;
            let cam = name_of(topic, "/camera/", "");
            let cam = cam
                .trim_end_matches("_image_raw")
                .trim_end_matches("_depth")
                .to_string();
            let res = [img.width, img.height];
            match img.encoding.as_str() {
                "16UC1" | "mono16" => {
                    let d = rerun::DepthImage::from_gray16(img.data, res).with_meter(1000.0);
                    cx.log(&format!("camera/{cam}/depth"), &d)?;
                }
                "32FC1" => {
                    let d = rerun::DepthImage::from_data_type_and_bytes(
                        img.data,
                        res,
                        rerun::ChannelDatatype::F32,
                    )
                    .with_meter(1.0);
                    cx.log(&format!("camera/{cam}/depth"), &d)?;
                }
                _ => {
                    let rgb = crate::lerobot::cdr::image_to_rgb(&img).map_err(e)?;
                    cx.log(
                        &format!("camera/{cam}/rgb"),
                        &rerun::Image::from_rgb24(rgb.pixels, res),
                    )?;
                }
            }
        }
        "sensor_msgs/msg/CompressedImage" => {
            let c: CompressedImage = decode(data).map_err(e)?;
            let cam = name_of(topic, "/camera/", "/compressed");
            cx.log(
                &format!("camera/{cam}/rgb"),
                &rerun::EncodedImage::from_file_contents(c.data),
            )?;
        }
        "sensor_msgs/msg/JointState" => {
            let js: JointState = decode(data).map_err(e)?;
            for (i, n) in js.name.iter().enumerate() {
                let n = crate::lerobot::sanitize(n);
                for (field, v) in [
                    ("position", &js.position),
                    ("velocity", &js.velocity),
                    ("effort", &js.effort),
                ] {
                    if let Some(x) = v.get(i) {
                        cx.log(&format!("joints/{n}/{field}"), &rerun::Scalars::single(*x))?;
                    }
                }
            }
            arm(cx, &js, t)?;
        }
        "geometry_msgs/msg/WrenchStamped" => {
            let w: WrenchStamped = decode(data).map_err(e)?;
            let side = name_of(topic, "/wrist/", "/wrench");
            let (f, q) = (&w.wrench.force, &w.wrench.torque);
            for (c, v) in [
                ("force_x", f.x),
                ("force_y", f.y),
                ("force_z", f.z),
                ("torque_x", q.x),
                ("torque_y", q.y),
                ("torque_z", q.z),
            ] {
                cx.log(&format!("wrench/{side}/{c}"), &rerun::Scalars::single(v))?;
            }
            if side == "right" {
                cx.last_force = Some([f.x, f.y, f.z]);
            }
        }
        "demotape_msgs/msg/TactileArray" => {
            let ta: TactileArray = decode(data).map_err(e)?;
            if ta.pressure.len() != (ta.rows * ta.cols) as usize {
                anyhow::bail!("tactile array size mismatch");
            }
            let bytes: Vec<u8> = ta.pressure.iter().flat_map(|p| p.to_le_bytes()).collect();
            let img = rerun::DepthImage::from_data_type_and_bytes(
                bytes,
                [ta.cols, ta.rows],
                rerun::ChannelDatatype::F32,
            )
            .with_colormap(rerun::components::Colormap::Viridis);
            cx.log(
                &format!("tactile/{}", name_of(topic, "/tactile/", "")),
                &img,
            )?;
        }
        "demotape_msgs/msg/EpisodeEvent" => {
            let ev: EpisodeEvent = decode(data).map_err(e)?;
            let level = if ev.kind.contains("drop") || ev.kind.contains("gap") {
                "WARN"
            } else {
                "INFO"
            };
            cx.log(
                "events",
                &rerun::TextLog::new(format!(
                    "{} {} count={} {}",
                    ev.kind, ev.topic, ev.count, ev.detail
                ))
                .with_level(level),
            )?;
        }
        "demotape_msgs/msg/ClockObservations" => {
            let c: ClockObservations = decode(data).map_err(e)?;
            let dev = crate::lerobot::sanitize(&c.device);
            if let (Some(h), Some(m)) = (c.host_receive_ns.last(), c.mapped_ns.last()) {
                let lat = (*h as f64 - *m as f64) / 1e6;
                cx.log(
                    &format!("sync/{dev}/latency_ms"),
                    &rerun::Scalars::single(lat),
                )?;
            }
        }
        _ => anyhow::bail!("no view for {schema}"),
    }
    Ok(())
}

/// The arm from forward kinematics, decimated to [`ARM_HZ`].
fn arm(cx: &mut Ctx, js: &JointState, t: u64) -> anyhow::Result<()> {
    if cx.joint_idx.is_none() {
        let find = |n: &str| js.name.iter().position(|x| x == n);
        let arm: Option<Vec<usize>> = cx.arm_joints.iter().map(|n| find(n)).collect();
        match arm {
            Some(a) => cx.joint_idx = Some((a, find(&cx.gripper_joint))),
            None => return Ok(()), // not the simulated arm: scalars only
        }
    }
    if t < cx.last_arm_ns + 1_000_000_000 / ARM_HZ {
        return Ok(());
    }
    cx.last_arm_ns = t;
    let (idx, grip) = cx.joint_idx.clone().expect("set");
    let Some(q) = idx
        .iter()
        .map(|&i| js.position.get(i).copied())
        .collect::<Option<Vec<f64>>>()
    else {
        return Ok(());
    };
    let pts: Vec<[f32; 3]> = cx
        .arm
        .link_origins(&q)
        .iter()
        .map(|v| [v.x as f32, v.y as f32, v.z as f32])
        .collect();
    cx.log(
        "world/arm",
        &rerun::LineStrips3D::new([pts.clone()]).with_radii([0.015]),
    )?;
    cx.log(
        "world/arm/joints",
        &rerun::Points3D::new(pts).with_radii([0.025]),
    )?;
    let ee = cx.arm.fk(&q);
    let tr = ee.translation.vector;
    let r = ee.rotation.quaternion();
    cx.log(
        "world/arm/ee",
        &rerun::Transform3D::from_translation_rotation(
            [tr.x as f32, tr.y as f32, tr.z as f32],
            rerun::Quaternion::from_xyzw([r.i as f32, r.j as f32, r.k as f32, r.w as f32]),
        ),
    )?;
    let half = grip
        .and_then(|g| js.position.get(g))
        .map_or(0.04, |x| *x as f32);
    cx.log(
        "world/arm/ee/gripper",
        &rerun::LineStrips3D::new([
            [[0.0, half, -0.05], [0.0, half, 0.0]],
            [[0.0, -half, -0.05], [0.0, -half, 0.0]],
        ])
        .with_radii([0.006]),
    )?;
    if let Some(f) = cx.last_force {
        // the wrist force in the sensor's axes, drawn at the tool (1 cm per N)
        let v = [f[0] as f32 * 0.01, f[1] as f32 * 0.01, f[2] as f32 * 0.01];
        cx.log(
            "world/force",
            &rerun::Arrows3D::from_vectors([v]).with_origins([[
                tr.x as f32,
                tr.y as f32,
                tr.z as f32,
            ]]),
        )?;
    }
    Ok(())
}
