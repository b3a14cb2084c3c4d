//! `demotape view`: an episode in Rerun (0.36, SDK only; the edge recorder never links it).
//!
//! Timelines: `capture_time` (the synchronized reference clock: each message's MCAP
//! `log_time`) and `frame` (the index of the message on its own stream). Entities:
//! - `camera/<name>/rgb` (Image), `camera/<name>/depth` (DepthImage, meter = 1000 for 16UC1 mm)
//! - `joints/{position,velocity,effort}/<joint>` (Scalars; one plot per field)
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
//! - every other ROS 2 type, read with the file's own schema ([`ros`]): `/tf` and
//!   `/tf_static` as named transform frames under `world/tf`, PointCloud2 under
//!   `world/points`, CameraInfo as a pinhole on `camera/<name>`, Imu and Odometry plots (and
//!   the odometry's pose and path under `world/odom`), any other type's numbers under
//!   `topics/<topic>/…`
//!
//! The file is streamed chunk by chunk in time order: memory is bounded by one chunk, not by
//! the episode's length.
//!
//! A default layout (blueprint) goes with the data: cameras and depth in a grid, tactile
//! pads, the arm in 3D, tabs of time series (joint positions/velocities/efforts, wrench per
//! wrist, sync latency, phase) and one log of events and labels. It is built from the
//! entities actually logged, sent once the first second of data is in and again only if new
//! views appear.
//!
//! [`view_live`] draws the recorder's live copy (`demotape-recorder`'s `[live]`, over Zenoh)
//! the same way, on a `receive_time` timeline (the live copy is stamped with host receive
//! times, not the synchronized clock), plus the recorder's status (state, per-channel drops
//! and rates) under `recorder/`.

mod ros;

use crate::labels::load_labels;
use crate::lerobot::cdr::decode;
use crate::read::{chunk_messages, read_chunk};
use hal::msgs::{
    ClockObservations, CompressedImage, EpisodeEvent, Image, JointState, TactileArray,
    WrenchStamped,
};
use hal::robot::RobotArm;
use rerun::blueprint as bp;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Seconds of data covered (capture time for a file, receive time live).
    pub duration_s: f64,
    pub seconds: f64,
    /// The views of the default layout sent with the data (one per name).
    pub layout: Vec<String>,
    /// The files shown, in order: one, or the parts of a split episode from the one given on.
    pub parts: Vec<PathBuf>,
    /// A later part the split metadata names but that is not there.
    pub missing_part: Option<PathBuf>,
    /// The arm drawn (`URDF ur5e: base_link → tool0`), or why none was.
    pub arm: String,
}

/// Where the gripper's opening comes from (as `demotape annotate` reads it).
#[derive(Clone, Debug, PartialEq)]
pub enum ViewGripper {
    /// No gripper: none is drawn.
    None,
    /// The mean position of these joints of the joint-state messages (one joint, or a
    /// hand's fingers).
    Joints(Vec<String>),
    /// The mean of the numbers a field path selects in its topic's messages (any type,
    /// read with the file's schema).
    Field(crate::decode::TopicPath),
}

/// The robot whose arm `view` draws (default: the simulator's).
#[derive(Clone, Debug)]
pub struct ViewRobot {
    pub arm: RobotArm,
    pub gripper: ViewGripper,
    /// The opening (m) is `gripper_scale` × position + `gripper_offset`.
    pub gripper_scale: f64,
    pub gripper_offset: f64,
}

impl Default for ViewRobot {
    fn default() -> Self {
        let c = crate::label::AnnotateConfig::default();
        ViewRobot::from_config(&c).expect("the default arm")
    }
}

impl ViewRobot {
    /// The robot of an annotate config (`[robot]` or `[arm]`, and `[signals]`' gripper).
    pub fn from_config(c: &crate::label::AnnotateConfig) -> anyhow::Result<ViewRobot> {
        let sg = &c.signals;
        let gripper = if !sg.gripper_field.is_empty() {
            ViewGripper::Field(
                sg.gripper_field
                    .parse()
                    .map_err(|e| anyhow::anyhow!("signals.gripper_field: {e}"))?,
            )
        } else if !sg.gripper_joints.is_empty() {
            ViewGripper::Joints(sg.gripper_joints.clone())
        } else if !sg.gripper_joint.is_empty() {
            ViewGripper::Joints(vec![sg.gripper_joint.clone()])
        } else {
            ViewGripper::None
        };
        Ok(ViewRobot {
            arm: c.robot_arm()?,
            gripper,
            gripper_scale: sg.gripper_scale,
            gripper_offset: sg.gripper_offset,
        })
    }
}

/// The synchronized reference clock (each message's MCAP `log_time`).
const CAPTURE_TIME: &str = "capture_time";
/// Host receive time, for the live copy.
const RECEIVE_TIME: &str = "receive_time";
/// Arm drawing rate (Hz): joint states arrive at 500 Hz; 30 Hz is enough to see the motion.
const ARM_HZ: u64 = 30;

struct Ctx {
    rec: rerun::RecordingStream,
    timeline: &'static str,
    report: ViewReport,
    arm: RobotArm,
    gripper: ViewGripper,
    gripper_scale: f64,
    gripper_offset: f64,
    /// Joint names seen on joint-state messages that did not carry the arm (for the report).
    unmatched_names: BTreeSet<String>,
    arm_drawn: bool,
    last_arm_ns: u64,
    /// Least time between two drawings of the arm (0 for the live copy: already decimated).
    arm_period_ns: u64,
    frames: BTreeMap<String, i64>,
    /// The joint names of the arm's publisher, and where the arm joints are among them.
    joint_idx: Option<(Vec<String>, Vec<usize>)>,
    /// Half the gripper's last opening (m), from whichever message carried it.
    last_grip: Option<f64>,
    last_force: Option<[f64; 3]>,
    /// The view groups of the layout last sent.
    laid_out: BTreeSet<String>,
    /// Types read with the file's schemas (tf, point clouds, any other type).
    ros: ros::RosState,
}

impl Ctx {
    fn new(rec: rerun::RecordingStream, timeline: &'static str, robot: &ViewRobot) -> Ctx {
        Ctx {
            rec,
            timeline,
            report: ViewReport::default(),
            arm: robot.arm.clone(),
            gripper: robot.gripper.clone(),
            gripper_scale: robot.gripper_scale,
            gripper_offset: robot.gripper_offset,
            unmatched_names: BTreeSet::new(),
            arm_drawn: false,
            last_arm_ns: 0,
            arm_period_ns: if timeline == CAPTURE_TIME {
                1_000_000_000 / ARM_HZ
            } else {
                0
            },
            frames: BTreeMap::new(),
            joint_idx: None,
            last_grip: None,
            last_force: None,
            laid_out: BTreeSet::new(),
            ros: ros::RosState::default(),
        }
    }

    fn log<A: rerun::AsComponents + ?Sized>(&mut self, path: &str, a: &A) -> anyhow::Result<()> {
        self.rec.log(path, a)?;
        *self.report.rows.entry(path.to_string()).or_default() += 1;
        Ok(())
    }

    /// Log for all times (`/tf_static`).
    fn log_static<A: rerun::AsComponents + ?Sized>(
        &mut self,
        path: &str,
        a: &A,
    ) -> anyhow::Result<()> {
        self.rec.log_static(path, a)?;
        *self.report.rows.entry(path.to_string()).or_default() += 1;
        Ok(())
    }

    fn at(&self, t_ns: u64) {
        self.rec
            .set_timestamp_nanos_since_epoch(self.timeline, t_ns as i64);
    }

    /// One message of `topic` at `t`, on its stream's `frame` timeline.
    fn message(&mut self, topic: &str, schema: &str, t: u64, data: &[u8]) {
        self.report.messages += 1;
        let frame = match self.frames.get_mut(topic) {
            Some(f) => {
                *f += 1;
                *f - 1
            }
            None => {
                self.frames.insert(topic.to_string(), 1);
                0
            }
        };
        self.at(t);
        self.rec.set_time_sequence("frame", frame);
        if let Err(e) = message(self, topic, schema, t, data) {
            self.report.skipped += 1;
            tracing::debug!(%topic, "skipped: {e}");
        }
    }

    /// Say which arm was drawn, or why none was (joint states that lack its joints).
    fn arm_report(&mut self) {
        self.report.arm = if self.arm_drawn {
            self.arm.describe.clone()
        } else if self.unmatched_names.is_empty() {
            "none drawn: no joint states".into()
        } else {
            let names: Vec<&str> = self.unmatched_names.iter().map(String::as_str).collect();
            let msg = format!(
                "none drawn: the joint states name [{}], the {} needs [{}] (describe the \
                 robot with --urdf or --config)",
                names.join(", "),
                self.arm.describe,
                self.arm.joint_names().join(", ")
            );
            tracing::warn!("{msg}");
            msg
        };
    }

    /// Send the default layout if the logged entities call for views it does not have yet.
    fn send_layout(&mut self) -> anyhow::Result<()> {
        let groups: BTreeSet<String> = self
            .report
            .rows
            .keys()
            .filter_map(|p| view_group(p))
            .collect();
        if groups.is_empty() || groups.is_subset(&self.laid_out) {
            return Ok(());
        }
        let (blueprint, names) = layout(&groups, self.timeline);
        blueprint.send(
            &self.rec,
            bp::BlueprintActivation {
                make_active: true,
                make_default: true,
            },
        )?;
        tracing::debug!(views = ?names, "layout sent");
        self.report.layout = names;
        self.laid_out = groups;
        Ok(())
    }
}

/// Which view of the default layout shows entity `path` (`None`: no view of its own).
fn view_group(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    Some(match parts.as_slice() {
        ["camera", _, "rgb" | "depth"] | ["tactile", _] => path.to_string(),
        ["world", ..] => "world".into(),
        ["joints" | "wrench" | "recorder" | "topics", kind, _, ..] => {
            format!("{}/{kind}", parts[0])
        }
        ["imu" | "odom", name, kind, _] => format!("{}/{name}/{kind}", parts[0]),
        ["sync", ..] => "sync".into(),
        ["annotations", "phase_index"] => path.to_string(),
        ["events"] | ["annotations", "phases" | "outcome"] | ["recorder", "state"] => "log".into(),
        _ => return None,
    })
}

/// The default layout for `groups` (from [`view_group`]): images on the left (cameras, then
/// tactile pads), the arm in 3D, tabs of plots and the log on the right. Returns the
/// blueprint and its view names.
fn layout(groups: &BTreeSet<String>, timeline: &str) -> (bp::Blueprint, Vec<String>) {
    let mut names = Vec::new();
    let mut name = |n: String| {
        names.push(n.clone());
        n
    };
    let title = |g: &str| g.split('/').skip(1).collect::<Vec<_>>().join(" ");
    // (view name, origin) of the image views and of the plots, in display order
    let with = |prefix: &'static str| groups.iter().filter(move |g| g.starts_with(prefix));
    let mut cam_groups: Vec<&String> = with("camera/").collect();
    // cameras: rgb before depth, camera by camera
    cam_groups.sort_by_key(|g| (g.split('/').nth(1), g.ends_with("depth")));
    let cam_specs: Vec<(String, &str)> =
        cam_groups.iter().map(|g| (title(g), g.as_str())).collect();
    let pad_specs: Vec<(String, &str)> = with("tactile/")
        .map(|g| (format!("tactile {}", title(g)), g.as_str()))
        .collect();
    let mut plot_specs: Vec<(String, &str)> = [
        ("joints/position", "joint positions (rad, m)"),
        ("joints/velocity", "joint velocities"),
        ("joints/effort", "joint efforts"),
    ]
    .into_iter()
    .filter(|(g, _)| groups.contains(*g))
    .map(|(g, label)| (label.to_string(), g))
    .collect();
    plot_specs
        .extend(with("wrench/").map(|g| (format!("wrench {} (N, N·m)", title(g)), g.as_str())));
    plot_specs.extend(with("imu/").map(|g| (format!("imu {}", title(g)), g.as_str())));
    plot_specs.extend(with("odom/").map(|g| (format!("odometry {}", title(g)), g.as_str())));
    plot_specs.extend(with("topics/").map(|g| (title(g), g.as_str())));
    for (g, label) in [
        ("sync", "sync: receive − capture (ms)"),
        ("annotations/phase_index", "phase index"),
    ] {
        if groups.contains(g) {
            plot_specs.push((label.to_string(), g));
        }
    }
    plot_specs.extend(with("recorder/").map(|g| (format!("recorder {}", title(g)), g.as_str())));

    let mut image_views = |specs: Vec<(String, &str)>| -> Vec<bp::ContainerLike> {
        specs
            .into_iter()
            .map(|(n, g)| bp::Spatial2DView::new(name(n)).with_origin(g).into())
            .collect()
    };
    let cams = image_views(cam_specs);
    let pads = image_views(pad_specs);
    let mut right: Vec<bp::ContainerLike> = Vec::new();
    if groups.contains("world") {
        right.push(
            bp::Spatial3DView::new(name("3D".into()))
                .with_origin("world")
                .into(),
        );
    }
    let plots: Vec<bp::ContainerLike> = plot_specs
        .into_iter()
        .map(|(n, g)| bp::TimeSeriesView::new(name(n)).with_origin(g).into())
        .collect();
    if !plots.is_empty() {
        right.push(bp::Tabs::new(plots).into());
    }
    if groups.contains("log") {
        right.push(
            bp::TextLogView::new(name("events and labels".into()))
                .with_contents(["/events", "/annotations/**", "/recorder/state"])
                .into(),
        );
    }
    let mut left: Vec<bp::ContainerLike> = Vec::new();
    let (has_cams, has_pads) = (!cams.is_empty(), !pads.is_empty());
    if has_cams {
        left.push(bp::Grid::new(cams).into());
    }
    if has_pads {
        left.push(bp::Grid::new(pads).into());
    }
    let left_shares: Vec<f32> = match (has_cams, has_pads) {
        (true, true) => vec![3.0, 1.0],
        _ => vec![1.0],
    };
    let right_shares: Vec<f32> = (0..right.len())
        .map(|i| {
            if i + 1 == right.len() && groups.contains("log") {
                1.0
            } else {
                2.0
            }
        })
        .collect();
    let mut cols: Vec<bp::ContainerLike> = Vec::new();
    let mut col_shares = Vec::new();
    if !left.is_empty() {
        cols.push(bp::Vertical::new(left).with_row_shares(left_shares).into());
        col_shares.push(3.0);
    }
    if !right.is_empty() {
        cols.push(
            bp::Vertical::new(right)
                .with_row_shares(right_shares)
                .into(),
        );
        col_shares.push(2.0);
    }
    let root = bp::Horizontal::new(cols).with_column_shares(col_shares);
    let blueprint = bp::Blueprint::new(root)
        .with_auto_views(false)
        .with_time_panel(bp::TimePanel::new().with_timeline(timeline));
    (blueprint, names)
}

fn open(id: String, sink: Sink<'_>) -> anyhow::Result<rerun::RecordingStream> {
    let builder = rerun::RecordingStreamBuilder::new("demotape").recording_name(id);
    Ok(match sink {
        Sink::Save(p) => builder.save(p)?,
        Sink::Spawn => builder.spawn()?,
        Sink::Connect(url) => builder.connect_grpc_opts(url)?,
    })
}

/// Convert `path` (and its labels, when `demotape annotate` wrote them) into Rerun. An
/// episode the recorder split into parts is followed from `path` on through each part's
/// `demotape.split` → `next_part`, into the same recording on the same timeline.
pub fn view(
    path: &Path,
    sink: Sink<'_>,
    labels_dir: Option<&Path>,
    robot: &ViewRobot,
    progress: bool,
) -> anyhow::Result<ViewReport> {
    let started = std::time::Instant::now();
    let parts = crate::read::episode_parts(path)?;
    if let Some(m) = &parts.missing {
        tracing::warn!(
            "{}: the next part of this episode, {}, is missing; shown up to there",
            path.display(),
            m.display()
        );
    }
    let id = parts.summaries[0]
        .sel
        .metadata
        .get("demotape.episode")
        .and_then(|m| m.get("episode_id"))
        .cloned()
        .unwrap_or_else(|| path.display().to_string());
    let mut cx = Ctx::new(open(id, sink)?, CAPTURE_TIME, robot);
    cx.report.parts = parts.files.clone();
    cx.report.missing_part = parts.missing.clone();
    let bar = if progress {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    // annotation layers first (they are small); the first part's sidecar covers them all
    let labels = load_labels(path, labels_dir, &parts.metadata())?;
    for (i, (phase, a, _)) in labels.phases.iter().enumerate() {
        cx.at(*a);
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
            cx.at(labels.phases[i].2);
            cx.log("annotations/phase_index", &rerun::Scalars::single(idx))?;
        }
    }
    if let (Some(o), Some(last)) = (&labels.outcome, labels.phases.last()) {
        cx.at(last.1);
        cx.log(
            "annotations/outcome",
            &rerun::TextLog::new(format!("outcome: {o} ({})", labels.source))
                .with_level(if o == "success" { "INFO" } else { "WARN" }),
        )?;
    }
    let (mut t_min, mut t_max) = (u64::MAX, 0u64);
    for (path, summary) in parts.files.iter().zip(parts.summaries) {
        view_part(&mut cx, path, summary, &bar, (&mut t_min, &mut t_max))?;
    }
    bar.finish_and_clear();
    ros::finish(&mut cx)?;
    cx.arm_report();
    cx.send_layout()?;
    cx.rec.flush_blocking()?;
    if t_max > t_min {
        cx.report.duration_s = (t_max - t_min) as f64 / 1e9;
    }
    cx.report.seconds = started.elapsed().as_secs_f64();
    Ok(cx.report)
}

/// Stream one file (one part of an episode) into `cx`.
fn view_part(
    cx: &mut Ctx,
    path: &Path,
    summary: crate::read::Summary,
    bar: &indicatif::ProgressBar,
    (t_min, t_max): (&mut u64, &mut u64),
) -> anyhow::Result<()> {
    let crate::read::Summary {
        mut file,
        len,
        mut chunk_index,
        sel:
            crate::read::Selection {
                channels,
                schemas,
                schema_texts,
                ..
            },
    } = summary;
    for c in channels.values() {
        if let Some(text) = schema_texts.get(&c.schema_id) {
            cx.ros.schema_texts.insert(c.topic.clone(), text.clone());
        }
    }
    chunk_index.sort_by_key(|c| (c.message_start_time, c.chunk_start_offset));
    bar.inc_length(chunk_index.len() as u64);
    let mut raw = Vec::new();
    for ci in &chunk_index {
        let plain = read_chunk(path, &mut file, len, ci, &mut raw)?;
        for m in chunk_messages(path, ci, &plain) {
            let m = m?;
            let (ch, t) = (m.channel, m.log_time);
            let Some(c) = channels.get(&ch) else { continue };
            let schema = schemas.get(&c.schema_id).map_or("", String::as_str);
            *t_min = (*t_min).min(t);
            *t_max = (*t_max).max(t);
            cx.message(&c.topic, schema, t, m.data);
        }
        // the layout once a second of data is in (every stream has shown up by then)
        if cx.laid_out.is_empty() && *t_max >= t_min.saturating_add(1_000_000_000) {
            cx.send_layout()?;
        }
        bar.inc(1);
    }
    Ok(())
}

/// Where to find the recorder's live copy.
pub struct LiveOptions {
    pub session: hal::zenoh::SessionConfig,
    /// The recorder's `control.key_prefix`.
    pub prefix: String,
    /// The recorder's `recorder.robot_id`.
    pub robot: String,
    /// Stop after this long (None: until `stop`).
    pub duration: Option<std::time::Duration>,
}

/// Draw the recorder's live copy ([`LiveOptions`]) until `stop` is set or the duration is
/// over. Messages that cannot be drawn are counted in `skipped`, never fatal.
pub fn view_live(
    opts: &LiveOptions,
    sink: Sink<'_>,
    stop: &AtomicBool,
    view_robot: &ViewRobot,
    progress: bool,
) -> anyhow::Result<ViewReport> {
    use zenoh::Wait;
    let started = std::time::Instant::now();
    // the recorder's own sanitizing of robot ids, so `--robot` matches its keys
    let robot = hal::sanitize(&opts.robot);
    let base = format!("{}/{robot}", opts.prefix);
    let mut zc = opts.session.to_zenoh()?;
    // reconnect quickly to a recorder that starts (or restarts) after the viewer
    zc.insert_json5(
        "connect/retry",
        r#"{"period_init_ms": 200, "period_max_ms": 2000, "period_increase_factor": 2}"#,
    )
    .map_err(|e| anyhow::anyhow!("zenoh config: {e}"))?;
    let session = zenoh::open(zc)
        .wait()
        .map_err(|e| anyhow::anyhow!("opening the Zenoh session: {e}"))?;
    // newest first: a slow viewer skips frames instead of falling behind
    let data = session
        .declare_subscriber(format!("{base}/live/**"))
        .with(zenoh::handlers::RingChannel::new(512))
        .wait()
        .map_err(|e| anyhow::anyhow!("subscribing to {base}/live/**: {e}"))?;
    let status = session
        .declare_subscriber(format!("{base}/status"))
        .with(zenoh::handlers::RingChannel::new(4))
        .wait()
        .map_err(|e| anyhow::anyhow!("subscribing to {base}/status: {e}"))?;
    tracing::info!(keys = %format!("{base}/live/**"), "waiting for the recorder's live copy");
    let mut cx = Ctx::new(
        open(format!("{robot} (live)"), sink)?,
        RECEIVE_TIME,
        view_robot,
    );
    let bar = if progress {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message(format!("live from {base} (Ctrl-C to stop)"));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (mut t_min, mut t_max) = (u64::MAX, 0u64);
    let mut last_state = String::new();
    let mut warned = false;
    let mut next_layout = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while !stop.load(Ordering::Relaxed) && opts.duration.is_none_or(|d| started.elapsed() < d) {
        if let Ok(Some(s)) = data.recv_timeout(std::time::Duration::from_millis(50)) {
            match live_meta(&s) {
                Ok((topic, schema, t)) => {
                    t_min = t_min.min(t);
                    t_max = t_max.max(t);
                    cx.message(&topic, &schema, t, &s.payload().to_bytes());
                }
                Err(e) => {
                    cx.report.skipped += 1;
                    tracing::debug!(key = %s.key_expr(), "skipped: {e}");
                }
            }
            bar.set_position(cx.report.messages);
        }
        while let Ok(Some(s)) = status.try_recv() {
            if let Err(e) = log_status(&mut cx, &s.payload().to_bytes(), &mut last_state) {
                tracing::debug!("status skipped: {e}");
            }
        }
        if !warned && cx.report.messages == 0 && started.elapsed().as_secs() >= 5 {
            tracing::warn!(
                "nothing on {base}/live/** after 5 s: is the recorder running with its live copy \
                 (`run` with live.enabled, or `sim --live`), with robot id {robot:?}, and \
                 reachable (multicast on this LAN, or --zenoh tcp/HOST:PORT)?"
            );
            warned = true;
        }
        if std::time::Instant::now() >= next_layout {
            cx.send_layout()?;
            next_layout = std::time::Instant::now() + std::time::Duration::from_secs(2);
        }
        bar.tick();
    }
    bar.finish_and_clear();
    ros::finish(&mut cx)?;
    cx.arm_report();
    cx.send_layout()?;
    cx.rec.flush_blocking()?;
    let _ = session.close().wait();
    if t_max > t_min {
        cx.report.duration_s = (t_max - t_min) as f64 / 1e9;
    }
    cx.report.seconds = started.elapsed().as_secs_f64();
    Ok(cx.report)
}

/// Topic, type and receive time of a live message (from its attachment).
fn live_meta(s: &zenoh::sample::Sample) -> Result<(String, String, u64), String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        topic: String,
        schema: String,
        receive_ns: u64,
    }
    let att = s
        .attachment()
        .ok_or("no attachment (not a demotape live message)")?;
    let m: Meta =
        serde_json::from_slice(&att.to_bytes()).map_err(|e| format!("attachment: {e}"))?;
    Ok((m.topic, m.schema, m.receive_ns))
}

/// The recorder's status (`<prefix>/<robot>/status`): state changes as a log line,
/// per-channel drops and rates as plots.
fn log_status(cx: &mut Ctx, json: &[u8], last_state: &mut String) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(json)?;
    let t = v["t_ns"]
        .as_u64()
        .filter(|t| *t > 0)
        .unwrap_or_else(hal::sim::now_ns);
    cx.at(t);
    let state = format!(
        "{}{}",
        v["state"].as_str().unwrap_or("?"),
        v["episode"]["id"]
            .as_str()
            .map(|e| format!(" {e}"))
            .unwrap_or_default()
    );
    if state != *last_state {
        cx.log(
            "recorder/state",
            &rerun::TextLog::new(format!("recorder: {state}")).with_level("INFO"),
        )?;
        *last_state = state;
    }
    for c in v["channels"].as_array().into_iter().flatten() {
        let name = crate::lerobot::sanitize(c["topic"].as_str().unwrap_or("?").trim_matches('/'));
        for field in ["drops", "rate_hz"] {
            if let Some(x) = c[field].as_f64() {
                cx.log(
                    &format!("recorder/{field}/{name}"),
                    &rerun::Scalars::single(x),
                )?;
            }
        }
    }
    Ok(())
}

fn name_of(topic: &str, prefix: &str, suffix: &str) -> String {
    crate::lerobot::sanitize(
        topic
            .trim_start_matches(prefix)
            .trim_end_matches(suffix)
            .trim_matches('/'),
    )
}

/// Log one decoded message under its entities.
fn message(cx: &mut Ctx, topic: &str, schema: &str, t: u64, data: &[u8]) -> anyhow::Result<()> {
    let e = |s: String| anyhow::anyhow!(s);
    // a gripper read from a field of its own topic (its driver's status): the opening, then
    // the message is drawn as any other of its type
    let field = match &cx.gripper {
        ViewGripper::Field(p) if p.topic == topic => Some(p.field.clone()),
        _ => None,
    };
    if let Some(field) = field
        && let Some(mean) = ros::path_mean(cx, topic, schema, &field, data)
    {
        cx.last_grip = Some((cx.gripper_scale * mean + cx.gripper_offset) / 2.0);
    }
    match schema {
        "sensor_msgs/msg/Image" => {
            let img: Image = decode(data).map_err(e)?;
            let cam = crate::lerobot::camera_name(topic);
            let cam = cam.trim_end_matches("_depth");
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
            let cam = crate::lerobot::camera_name(topic);
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
                        cx.log(&format!("joints/{field}/{n}"), &rerun::Scalars::single(*x))?;
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
        _ => ros::message(cx, topic, schema, t, data)?,
    }
    Ok(())
}

/// The arm from forward kinematics, decimated to [`ARM_HZ`] in files.
fn arm(cx: &mut Ctx, js: &JointState, t: u64) -> anyhow::Result<()> {
    // the gripper may have a publisher of its own on the joint-state topic
    let mut gripper_only = false;
    if let ViewGripper::Joints(names) = &cx.gripper {
        let pos: Option<Vec<f64>> = names
            .iter()
            .map(|g| {
                js.name
                    .iter()
                    .position(|n| n == g)
                    .and_then(|i| js.position.get(i).copied())
            })
            .collect();
        if let Some(pos) = pos.filter(|p| !p.is_empty()) {
            let mean = pos.iter().sum::<f64>() / pos.len() as f64;
            cx.last_grip = Some((cx.gripper_scale * mean + cx.gripper_offset) / 2.0);
        }
        gripper_only = js.name.iter().all(|n| names.contains(n));
    }
    if cx.last_arm_ns > 0 && t < cx.last_arm_ns + cx.arm_period_ns {
        return Ok(());
    }
    // where this message has the arm joints (cached per name list: publishers differ)
    if cx
        .joint_idx
        .as_ref()
        .is_none_or(|(names, _)| *names != js.name)
    {
        let find = |n: &str| js.name.iter().position(|x| x == n);
        let Some(idx) = cx.arm.joint_names().iter().map(|n| find(n)).collect() else {
            // not the arm's publisher (or not this arm): scalars only
            if !gripper_only {
                cx.unmatched_names.extend(js.name.iter().cloned());
            }
            return Ok(());
        };
        cx.joint_idx = Some((js.name.clone(), idx));
    }
    let (_, idx) = cx.joint_idx.as_ref().expect("set");
    let Some(mut q) = idx
        .iter()
        .map(|&i| js.position.get(i).copied())
        .collect::<Option<Vec<f64>>>()
    else {
        return Ok(());
    };
    cx.arm.to_si(&mut q);
    cx.last_arm_ns = t;
    cx.arm_drawn = true;
    let pts: Vec<[f32; 3]> = cx
        .arm
        .kin
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
    let ee = cx.arm.kin.fk(&q);
    let tr = ee.translation.vector;
    let r = ee.rotation.quaternion();
    cx.log(
        "world/arm/ee",
        &rerun::Transform3D::from_translation_rotation(
            [tr.x as f32, tr.y as f32, tr.z as f32],
            rerun::Quaternion::from_xyzw([r.i as f32, r.j as f32, r.k as f32, r.w as f32]),
        ),
    )?;
    if cx.gripper != ViewGripper::None {
        let half = cx.last_grip.map_or(0.04, |x| x as f32);
        cx.log(
            "world/arm/ee/gripper",
            &rerun::LineStrips3D::new([
                [[0.0, half, -0.05], [0.0, half, 0.0]],
                [[0.0, -half, -0.05], [0.0, -half, 0.0]],
            ])
            .with_radii([0.006]),
        )?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_map_to_the_views_that_show_them() {
        for (path, group) in [
            ("camera/head/rgb", Some("camera/head/rgb")),
            ("camera/head/depth", Some("camera/head/depth")),
            ("tactile/left_palm", Some("tactile/left_palm")),
            ("world/arm/ee/gripper", Some("world")),
            ("joints/position/right_arm_joint1", Some("joints/position")),
            ("wrench/right/force_x", Some("wrench/right")),
            ("sync/camera_head/latency_ms", Some("sync")),
            ("recorder/drops/joint_states", Some("recorder/drops")),
            ("recorder/state", Some("log")),
            ("events", Some("log")),
            ("annotations/outcome", Some("log")),
            ("annotations/phase_index", Some("annotations/phase_index")),
            ("world/tf/tool0/axes", Some("world")),
            ("world/points/lidar", Some("world")),
            (
                "imu/imu/angular_velocity/x",
                Some("imu/imu/angular_velocity"),
            ),
            ("odom/odom/linear/x", Some("odom/odom/linear")),
            ("topics/cmd_vel/angular/z", Some("topics/cmd_vel")),
            ("topics/gripper_state/data", Some("topics/gripper_state")),
            ("__properties", None),
            ("camera/head", None),
        ] {
            assert_eq!(view_group(path).as_deref(), group, "{path}");
        }
    }

    #[test]
    fn layout_orders_cameras_and_names_every_view() {
        let groups: BTreeSet<String> = [
            "camera/wrist/depth",
            "camera/head/depth",
            "camera/head/rgb",
            "camera/wrist/rgb",
            "world",
            "joints/position",
            "wrench/right",
            "log",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let (_, names) = layout(&groups, RECEIVE_TIME);
        assert_eq!(
            names,
            [
                "head rgb",
                "head depth",
                "wrist rgb",
                "wrist depth",
                "3D",
                "joint positions (rad, m)",
                "wrench right (N, N·m)",
                "events and labels"
            ]
        );
    }
}
