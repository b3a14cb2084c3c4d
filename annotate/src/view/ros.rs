//! The ROS 2 types `demotape view` has no compiled-in decoder for, read with the file's own
//! schema through the generic CDR reader (`hal::ros`):
//! - `tf2_msgs/msg/TFMessage` on `/tf` (timed) and `/tf_static` (static): one entity per child
//!   frame, `world/tf/<child>`, holding the Transform3D from the parent frame to the child
//!   frame (Rerun's named frames, as tf2 names them) and the child's axes. A frame first seen
//!   as a parent only is attached to `world` (identity) until its own parent shows up.
//! - `sensor_msgs/msg/PointCloud2`: `world/points/<topic>` (Points3D from the x/y/z fields,
//!   colours from a packed `rgb`/`rgba` field), in the cloud's tf frame.
//! - `sensor_msgs/msg/CameraInfo`: a Pinhole on `camera/<name>` (over its images), logged when
//!   the intrinsics change.
//! - `sensor_msgs/msg/Imu`: `imu/<name>/{linear_acceleration,angular_velocity}/{x,y,z}`.
//! - `nav_msgs/msg/Odometry`: `odom/<name>/{linear,angular}/{x,y,z}` (twist plots), the pose
//!   as `world/odom/<name>/pose` and the path travelled as `world/odom/<name>/path`.
//! - any other type: every number of the message but its header as Scalars under
//!   `topics/<topic>/<field>` (numbers inside arrays only for messages of at most
//!   [`MAX_SCALARS`] numbers: a scan or a matrix is not a plot).

use super::Ctx;
use crate::lerobot::{camera_name, sanitize};
use anyhow::{Context, bail};
use hal::ros::{Layout, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// At most this many numbers of one message become scalars (arrays included).
pub const MAX_SCALARS: usize = 64;
/// The path of an odometry stream gets a point per this many metres travelled.
const PATH_STEP_M: f64 = 0.01;
/// ... and is logged again at most this often (ns).
const PATH_PERIOD_NS: u64 = 1_000_000_000;

/// What the generic views remember between messages.
#[derive(Default)]
pub struct RosState {
    /// Compiled types per topic (`None`: the type cannot be compiled; said once).
    layouts: HashMap<String, Option<Arc<Layout>>>,
    /// `ros2msg` schema texts per topic, from the file (the live copy has none: built-ins).
    pub schema_texts: HashMap<String, String>,
    /// tf frames that have a parent, and those attached to `world` for want of one.
    tf_children: HashSet<String>,
    tf_roots: HashSet<String>,
    /// Last intrinsics logged per camera.
    pinholes: HashMap<String, [f64; 6]>,
    paths: HashMap<String, OdomPath>,
}

#[derive(Default)]
struct OdomPath {
    points: Vec<[f32; 3]>,
    last_log_ns: u64,
    logged: usize,
}

fn layout(cx: &mut Ctx, topic: &str, schema: &str) -> anyhow::Result<Arc<Layout>> {
    if let Some(l) = cx.ros.layouts.get(topic) {
        return l
            .clone()
            .with_context(|| format!("{topic}: type {schema} cannot be read"));
    }
    let text = cx.ros.schema_texts.get(topic).map(String::as_str);
    let l = crate::decode::schema_layout(schema, text);
    if let Err(e) = &l {
        tracing::warn!(%topic, "not shown: {e}");
    }
    let l = l.ok();
    cx.ros.layouts.insert(topic.to_string(), l.clone());
    l.with_context(|| format!("{topic}: type {schema} cannot be read"))
}

/// The mean of the numbers `field` selects in one message of `topic` (decoded with the
/// file's schema); `None` when it selects none or the message does not decode.
pub fn path_mean(
    cx: &mut Ctx,
    topic: &str,
    schema: &str,
    field: &hal::ros::FieldPath,
    data: &[u8],
) -> Option<f64> {
    let l = layout(cx, topic, schema).ok()?;
    let v = hal::ros::decode(&l, data).ok()?;
    let nums: Vec<f64> = field
        .select(&v)?
        .numbers()
        .into_iter()
        .map(|(_, x)| x)
        .filter(|x| x.is_finite())
        .collect();
    (!nums.is_empty()).then(|| nums.iter().sum::<f64>() / nums.len() as f64)
}

/// The value at a path of field names.
fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, p| cur.get(p))
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    at(v, path)?.as_f64()
}

fn text<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    match at(v, path)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn vec3(v: &Value, path: &[&str]) -> Option<[f64; 3]> {
    let cur = at(v, path)?;
    Some([num(cur, &["x"])?, num(cur, &["y"])?, num(cur, &["z"])?])
}

fn quat(v: &Value, path: &[&str]) -> Option<rerun::Quaternion> {
    let cur = at(v, path)?;
    let q = [
        num(cur, &["x"])?,
        num(cur, &["y"])?,
        num(cur, &["z"])?,
        num(cur, &["w"])?,
    ];
    let n = q.iter().map(|x| x * x).sum::<f64>().sqrt();
    if !n.is_finite() || n < 1e-9 {
        // an all-zero quaternion (an unset orientation) is the identity
        return Some(rerun::Quaternion::IDENTITY);
    }
    Some(rerun::Quaternion::from_xyzw(q.map(|x| (x / n) as f32)))
}

fn f32s(x: [f64; 3]) -> [f32; 3] {
    x.map(|v| v as f32)
}

/// Draw one message of a type without a compiled-in view.
pub fn message(cx: &mut Ctx, topic: &str, schema: &str, t: u64, data: &[u8]) -> anyhow::Result<()> {
    let l = layout(cx, topic, schema)?;
    let v = hal::ros::decode(&l, data).map_err(|e| anyhow::anyhow!("{topic}: {e}"))?;
    match schema {
        "tf2_msgs/msg/TFMessage" => tf(cx, topic, &v),
        "sensor_msgs/msg/PointCloud2" => point_cloud(cx, topic, &v),
        "sensor_msgs/msg/CameraInfo" => camera_info(cx, topic, &v),
        "sensor_msgs/msg/Imu" => {
            let name = sanitize(topic);
            for field in ["linear_acceleration", "angular_velocity"] {
                let x = vec3(&v, &[field]).context("Imu without its vectors")?;
                for (c, x) in ["x", "y", "z"].iter().zip(x) {
                    cx.log(
                        &format!("imu/{name}/{field}/{c}"),
                        &rerun::Scalars::single(x),
                    )?;
                }
            }
            Ok(())
        }
        "nav_msgs/msg/Odometry" => odometry(cx, topic, t, &v),
        _ => scalars(cx, topic, &v),
    }
}

fn tf(cx: &mut Ctx, topic: &str, v: &Value) -> anyhow::Result<()> {
    let statik = topic.ends_with("tf_static");
    let Some(Value::List(transforms)) = v.get("transforms") else {
        bail!("TFMessage without transforms");
    };
    for tr in transforms {
        let parent = text(tr, &["header", "frame_id"]).unwrap_or("");
        let child = text(tr, &["child_frame_id"]).unwrap_or("");
        if parent.is_empty() || child.is_empty() || parent == child {
            continue;
        }
        let p = vec3(tr, &["transform", "translation"]).context("transform without translation")?;
        let q = quat(tr, &["transform", "rotation"]).context("transform without rotation")?;
        let path = format!("world/tf/{}", sanitize(child));
        let first = cx.ros.tf_children.insert(child.to_string());
        let t3 = rerun::Transform3D::from_translation_rotation(f32s(p), q)
            .with_parent_frame(parent)
            .with_child_frame(child);
        if statik {
            cx.log_static(&path, &t3)?;
        } else {
            cx.log(&path, &t3)?;
        }
        if first && !cx.ros.tf_roots.contains(child) {
            axes(cx, &format!("{path}/axes"), child)?;
        }
        if !cx.ros.tf_children.contains(parent) && !cx.ros.tf_roots.contains(parent) {
            // a root of the tree (so far): attach it to the 3D view's frame
            cx.ros.tf_roots.insert(parent.to_string());
            let root = format!("world/tf/{}", sanitize(parent));
            cx.log(
                &root,
                &rerun::Transform3D::from_translation([0.0, 0.0, 0.0])
                    .with_parent_frame("tf#/world")
                    .with_child_frame(parent),
            )?;
            axes(cx, &format!("{root}/axes"), parent)?;
        }
    }
    Ok(())
}

/// A tf frame's axes, drawn in that frame.
fn axes(cx: &mut Ctx, path: &str, frame: &str) -> anyhow::Result<()> {
    cx.log_static(path, &rerun::CoordinateFrame::new(frame))?;
    cx.log_static(path, &rerun::TransformAxes3D::new(0.1))
}

fn point_cloud(cx: &mut Ctx, topic: &str, v: &Value) -> anyhow::Result<()> {
    let u = |k: &str| num(v, &[k]).map(|x| x as usize).unwrap_or(0);
    let (h, w, step) = (u("height"), u("width"), u("point_step"));
    let row_step = u("row_step");
    let big = matches!(v.get("is_bigendian"), Some(Value::Bool(true)));
    let Some(Value::Bytes(data)) = v.get("data") else {
        bail!("PointCloud2 without data");
    };
    let Some(Value::List(fields)) = v.get("fields") else {
        bail!("PointCloud2 without fields");
    };
    // (offset, datatype) of a named field
    let field = |name: &str| {
        fields.iter().find_map(|f| {
            (text(f, &["name"]) == Some(name))
                .then(|| Some((num(f, &["offset"])? as usize, num(f, &["datatype"])? as u8)))
                .flatten()
        })
    };
    let (Some(x), Some(y), Some(z)) = (field("x"), field("y"), field("z")) else {
        bail!("PointCloud2 without x, y, z fields");
    };
    let rgb = field("rgb").or_else(|| field("rgba"));
    let read = |at: usize, (off, ty): (usize, u8)| -> Option<f64> {
        let b = data.get(at + off..)?;
        macro_rules! get {
            ($t:ty, $n:expr) => {{
                let a: [u8; $n] = b.get(..$n)?.try_into().ok()?;
                (if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }) as f64
            }};
        }
        Some(match ty {
            1 => get!(i8, 1),
            2 => get!(u8, 1),
            3 => get!(i16, 2),
            4 => get!(u16, 2),
            5 => get!(i32, 4),
            6 => get!(u32, 4),
            7 => get!(f32, 4),
            8 => get!(f64, 8),
            _ => return None,
        })
    };
    if step == 0 || (h > 1 && row_step < w * step) {
        bail!("PointCloud2 with point_step {step}, row_step {row_step} for width {w}");
    }
    let mut pts = Vec::with_capacity(h * w);
    let mut colors = Vec::new();
    for r in 0..h {
        for c in 0..w {
            let at = r * row_step.max(w * step) + c * step;
            let (Some(px), Some(py), Some(pz)) = (read(at, x), read(at, y), read(at, z)) else {
                bail!(
                    "PointCloud2: point {} past the end of its {} data bytes",
                    r * w + c,
                    data.len()
                );
            };
            if !(px.is_finite() && py.is_finite() && pz.is_finite()) {
                continue; // "no return" points of organized clouds
            }
            pts.push([px as f32, py as f32, pz as f32]);
            if let Some((off, ty)) = rgb {
                // packed 0x00RRGGBB in a float32 or uint32 field
                let packed = data
                    .get(at + off..at + off + 4)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
                if let (Some(p), 6 | 7) = (packed, ty) {
                    colors.push(rerun::Color::from_rgb(
                        (p >> 16) as u8,
                        (p >> 8) as u8,
                        p as u8,
                    ));
                }
            }
        }
    }
    let path = format!("world/points/{}", sanitize(topic));
    let mut points = rerun::Points3D::new(pts).with_radii([0.01]);
    if !colors.is_empty() {
        points = points.with_colors(colors);
    }
    cx.log(&path, &points)?;
    if let Some(frame) = text(v, &["header", "frame_id"]).filter(|f| !f.is_empty()) {
        cx.log(&path, &rerun::CoordinateFrame::new(frame))?;
    }
    Ok(())
}

fn camera_info(cx: &mut Ctx, topic: &str, v: &Value) -> anyhow::Result<()> {
    let Some(Value::List(k)) = v.get("k") else {
        bail!("CameraInfo without k");
    };
    let k: Vec<f64> = k.iter().filter_map(Value::as_f64).collect();
    let (w, h) = (
        num(v, &["width"]).unwrap_or(0.0),
        num(v, &["height"]).unwrap_or(0.0),
    );
    if k.len() != 9 || k[0] <= 0.0 || k[4] <= 0.0 || w <= 0.0 || h <= 0.0 {
        return Ok(()); // an uncalibrated camera publishes zeros: nothing to draw
    }
    let cam = camera_name(topic.trim_end_matches("/camera_info"));
    let intrinsics = [k[0], k[4], k[2], k[5], w, h];
    if cx.ros.pinholes.get(&cam) == Some(&intrinsics) {
        return Ok(());
    }
    cx.ros.pinholes.insert(cam.clone(), intrinsics);
    cx.log(
        &format!("camera/{cam}"),
        &rerun::Pinhole::from_focal_length_and_resolution(
            [k[0] as f32, k[4] as f32],
            [w as f32, h as f32],
        )
        .with_principal_point([k[2] as f32, k[5] as f32]),
    )
}

fn odometry(cx: &mut Ctx, topic: &str, t: u64, v: &Value) -> anyhow::Result<()> {
    let name = sanitize(topic);
    for (kind, field) in [("linear", "linear"), ("angular", "angular")] {
        let x = vec3(v, &["twist", "twist", field]).context("Odometry without its twist")?;
        for (c, x) in ["x", "y", "z"].iter().zip(x) {
            cx.log(
                &format!("odom/{name}/{kind}/{c}"),
                &rerun::Scalars::single(x),
            )?;
        }
    }
    let p = vec3(v, &["pose", "pose", "position"]).context("Odometry without its pose")?;
    let q = quat(v, &["pose", "pose", "orientation"]).context("Odometry without its pose")?;
    let pose = format!("world/odom/{name}/pose");
    cx.log(
        &pose,
        &rerun::Transform3D::from_translation_rotation(f32s(p), q),
    )?;
    if !cx.ros.paths.contains_key(&name) {
        cx.log_static(&pose, &rerun::TransformAxes3D::new(0.2))?;
    }
    let path = cx.ros.paths.entry(name.clone()).or_default();
    let moved = path.points.last().is_none_or(|l| {
        let d: f64 = l
            .iter()
            .zip(p)
            .map(|(a, b)| (f64::from(*a) - b).powi(2))
            .sum();
        d.sqrt() >= PATH_STEP_M
    });
    if moved {
        path.points.push(f32s(p));
    }
    if path.points.len() > path.logged && t >= path.last_log_ns + PATH_PERIOD_NS {
        path.last_log_ns = t;
        path.logged = path.points.len();
        let strip = rerun::LineStrips3D::new([path.points.clone()]).with_radii([0.01]);
        cx.log(&format!("world/odom/{name}/path"), &strip)?;
    }
    Ok(())
}

/// The last piece of every odometry path (logged at the time of its last message).
pub fn finish(cx: &mut Ctx) -> anyhow::Result<()> {
    let pending: Vec<(String, Vec<[f32; 3]>)> = cx
        .ros
        .paths
        .iter_mut()
        .filter(|(_, p)| p.points.len() > p.logged)
        .map(|(n, p)| {
            p.logged = p.points.len();
            (n.clone(), p.points.clone())
        })
        .collect();
    for (name, pts) in pending {
        cx.log(
            &format!("world/odom/{name}/path"),
            &rerun::LineStrips3D::new([pts]).with_radii([0.01]),
        )?;
    }
    Ok(())
}

fn scalars(cx: &mut Ctx, topic: &str, v: &Value) -> anyhow::Result<()> {
    if !matches!(v, Value::Struct(_)) {
        bail!("not a message");
    }
    let mut numbers = crate::decode::body_numbers(v);
    if numbers.len() > MAX_SCALARS {
        numbers.retain(|(p, _)| !p.contains('['));
    }
    if numbers.is_empty() {
        bail!("no number to plot");
    }
    let base = format!("topics/{}", sanitize(topic));
    for (p, x) in numbers {
        let e = p.replace(['.', '['], "/").replace(']', "");
        cx.log(&format!("{base}/{e}"), &rerun::Scalars::single(x))?;
    }
    Ok(())
}
