//! `demotape export lerobot`: labeled episodes → a LeRobot v3.0 dataset.
//!
//! Per episode:
//! 1. The small streams (joint states, the command stream if any, wrenches, touch) are read
//!    whole through the chunk index and decoded into time-sorted series.
//! 2. The frame grid `t0 + k/fps` covers the time where every exported stream has data
//!    (camera frame times come from the message indexes, without decompressing images).
//!    Continuous signals are linearly interpolated at each grid time (a sample exactly on the
//!    grid is taken as is); each camera contributes its frame nearest to the grid time, and
//!    that offset is reported.
//! 3. Image chunks are then streamed in time order: each chosen frame is converted when its
//!    chunk is read, rows are emitted as soon as every camera has its frame, and the data
//!    file gets a row group per bounded batch. Memory stays bounded by the batch size and
//!    the interleave of chunks, not the episode length.
//!
//! The dataset is built in `<out>.partial` and renamed to `<out>` only when complete.

use super::arrow_io::{Cell, DataFile, Kind, Rows, table, tasks_batch, write_table};
use super::cdr::{Rgb, decode, encode_png, image_to_rgb};
use super::stats::FeatureStats;
use super::video::Encoder;
use super::{OUTCOMES, PHASES, SOURCES, camera_key, data_path, grid_offset_ns, video_path};
use crate::decode::TopicPath;
use crate::labels::{Labels, load_labels};
use crate::read::{
    RawMessage, Selection, chunk_messages, message_times, read_chunk, read_selected_parts,
};
use hal::msgs::{CompressedImage, Image, RosMessage, TactileArray, WrenchStamped};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Which episodes to keep.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Keep only these outcomes (empty: any, labeled or not).
    pub outcomes: Vec<String>,
    /// Keep only episodes with phase and outcome labels.
    pub labeled: bool,
    /// Keep only these tasks (empty: any).
    pub tasks: Vec<String>,
    /// Drop episodes whose quality gates failed (when `demotape annotate` evaluated them).
    pub require_gates: bool,
}

/// Which lerobot the dataset is for, where the two differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LerobotVersion {
    /// Readable by lerobot 0.4.4 and 0.6 alike: labels as `phase_index` and friends only.
    #[default]
    V04,
    /// lerobot 0.6: also its language columns — each phase a `subtask` row of
    /// `language_persistent`, the outcome a `memory` row — which 0.4.4 cannot load (its
    /// features have no `language` dtype).
    V06,
}

impl std::str::FromStr for LerobotVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "0.4" | "0.4.4" => Ok(LerobotVersion::V04),
            "0.6" | "0.6.1" => Ok(LerobotVersion::V06),
            o => Err(format!("lerobot version {o:?}: 0.4 or 0.6")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub out: PathBuf,
    pub fps: u32,
    /// Cameras as mp4 video instead of PNG images in the data files.
    pub video: bool,
    /// Codec, CRF and preset of that video.
    pub video_settings: super::video::VideoSettings,
    /// The lerobot the dataset is for (language columns with 0.6).
    pub lerobot_version: LerobotVersion,
    /// The text of each phase's subtask row (default: the phase name).
    pub subtask_text: BTreeMap<String, String>,
    /// Export no camera at all (state, action and labels only).
    pub no_images: bool,
    /// Also the depth cameras (`sensor_msgs/Image` 16UC1/mono16 in mm, 32FC1 in m, on a topic
    /// naming `depth`): 16-bit PNG images in millimetres, or with `video` and lerobot 0.6 its
    /// depth video (12-bit codes, HEVC, lossless; lerobot 0.4.4 cannot decode that, so for
    /// 0.4 they stay PNG images beside the RGB videos).
    pub depth: bool,
    /// The depth video's quantization (lerobot 0.6's `DepthEncoderConfig` defaults).
    pub depth_quant: super::video::DepthQuant,
    /// x265's preset for the depth video (`None`: its default, medium, as lerobot).
    pub depth_preset: Option<String>,
    /// Only these cameras (feature names without `observation.images.`; empty: all RGB).
    pub cameras: Vec<String>,
    pub joint_topic: String,
    /// `observation.state` from these field paths, in order, instead of the joint positions
    /// (and wrenches and touch); the first path's values are what "next state" actions use.
    pub state_paths: Vec<TopicPath>,
    /// `action` from these field paths instead of `action_topic`.
    pub action_paths: Vec<TopicPath>,
    /// The recorded command stream (`sensor_msgs/msg/JointState`); when absent, the action
    /// is the next frame's joint positions.
    pub action_topic: String,
    /// Add each wrist wrench (6 values) to `observation.state`.
    pub wrench: bool,
    /// Add each tactile pad's mean pressure to `observation.state`.
    pub tactile: bool,
    /// Where `demotape annotate` wrote its sidecars (default: next to each episode).
    pub labels_dir: Option<PathBuf>,
    pub filter: Filter,
    pub robot_type: Option<String>,
    /// Task string for episodes whose metadata has none.
    pub default_task: String,
    /// Start a new data file once the current one exceeds this size.
    pub data_file_mb: u64,
    /// A camera's mp4 holds episodes one after another up to this size (MB), as lerobot
    /// writes them (0.4.4: 200).
    pub video_file_mb: u64,
    /// Replace an existing output directory.
    pub force: bool,
    pub progress: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            out: PathBuf::from("dataset"),
            fps: 30,
            video: false,
            video_settings: Default::default(),
            lerobot_version: LerobotVersion::V04,
            subtask_text: BTreeMap::new(),
            no_images: false,
            depth: false,
            depth_quant: Default::default(),
            depth_preset: None,
            cameras: Vec::new(),
            joint_topic: "/joint_states".into(),
            state_paths: Vec::new(),
            action_paths: Vec::new(),
            action_topic: "/joint_commands".into(),
            wrench: true,
            tactile: true,
            labels_dir: None,
            filter: Filter {
                require_gates: true,
                ..Filter::default()
            },
            robot_type: None,
            default_task: "demonstration".into(),
            data_file_mb: 100,
            video_file_mb: 200,
            force: false,
            progress: false,
        }
    }
}

/// Why an episode was not exported.
#[derive(Clone, Debug, Serialize)]
pub struct Excluded {
    pub path: PathBuf,
    pub reason: String,
    /// True when the episode could not be read (an error, not a choice).
    pub error: bool,
}

/// One exported episode.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    pub path: PathBuf,
    pub episode_index: usize,
    pub frames: usize,
    pub task: String,
    pub outcome: Option<String>,
    pub source: &'static str,
    /// Absolute reference-clock time of frame 0 (ns).
    pub start_ns: u64,
    /// Per camera: largest and median |frame time − grid time| (ms).
    pub camera_offset_ms: BTreeMap<String, (f64, f64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    pub out: PathBuf,
    pub fps: u32,
    pub kept: Vec<Kept>,
    pub excluded: Vec<Excluded>,
    pub total_frames: usize,
    pub action_source: String,
    pub state_names: Vec<String>,
    pub cameras: Vec<String>,
    pub data_files: usize,
    pub seconds: f64,
}

/// A time series: sorted times (ns) and `dims` values per time.
#[derive(Clone, Debug, Default)]
struct Series {
    t: Vec<u64>,
    v: Vec<f64>,
    dims: usize,
}

impl Series {
    fn new(dims: usize) -> Self {
        Series {
            dims,
            ..Default::default()
        }
    }
    fn push(&mut self, t: u64, v: &[f64]) {
        self.t.push(t);
        self.v.extend_from_slice(v);
    }
    fn sort(&mut self) {
        if self.t.windows(2).all(|w| w[0] <= w[1]) {
            return;
        }
        let mut idx: Vec<usize> = (0..self.t.len()).collect();
        idx.sort_by_key(|&i| self.t[i]);
        let d = self.dims;
        self.t = idx.iter().map(|&i| self.t[i]).collect();
        self.v = idx
            .iter()
            .flat_map(|&i| self.v[i * d..(i + 1) * d].iter().copied())
            .collect();
    }
    fn first(&self) -> Option<u64> {
        self.t.first().copied()
    }
    fn last(&self) -> Option<u64> {
        self.t.last().copied()
    }
    /// Linear interpolation at `t` (clamped to the ends) into `out`.
    fn at(&self, t: u64, out: &mut Vec<f64>) {
        let d = self.dims;
        let i = self.t.partition_point(|&x| x < t);
        if i < self.t.len() && self.t[i] == t {
            out.extend_from_slice(&self.v[i * d..(i + 1) * d]);
        } else if i == 0 {
            out.extend_from_slice(&self.v[..d]);
        } else if i == self.t.len() {
            out.extend_from_slice(&self.v[(i - 1) * d..i * d]);
        } else {
            let (t0, t1) = (self.t[i - 1], self.t[i]);
            let a = (t - t0) as f64 / (t1 - t0) as f64;
            let (p, q) = (&self.v[(i - 1) * d..i * d], &self.v[i * d..(i + 1) * d]);
            out.extend(p.iter().zip(q).map(|(x, y)| x + (y - x) * a));
        }
    }
}

/// What an episode offers, checked against the dataset's features.
struct EpisodeStreams {
    state: Vec<Series>,
    state_names: Vec<String>,
    /// Number of joint values at the front of the state (what "next state" actions use).
    joints: usize,
    /// One series per commanded joint, and their names.
    action: Option<(Vec<Series>, Vec<String>)>,
    cameras: Vec<Camera>,
}

/// A camera stream to export.
struct Camera {
    /// `observation.images.<name>`
    key: String,
    topic: String,
    schema: String,
    /// A depth map (millimetres), not RGB.
    depth: bool,
}

fn is_camera(topic: &str, schema: &str) -> bool {
    (schema == <Image as RosMessage>::TYPE_NAME
        || schema == <CompressedImage as RosMessage>::TYPE_NAME)
        && !topic.contains("depth")
}

/// A depth camera: a raw `Image` on a topic naming `depth` (`/camera/head/depth`,
/// `/camera/depth/image_rect_raw`, `/camera/aligned_depth_to_color/image_raw`).
fn is_depth_camera(topic: &str, schema: &str) -> bool {
    schema == <Image as RosMessage>::TYPE_NAME && topic.contains("depth")
}

/// Whether a camera goes into a video file (else PNG images in the data files): RGB with
/// `--video`; depth with `--video` only for lerobot 0.6, which decodes 12-bit depth video.
fn in_video(opts: &ExportOptions, depth: bool) -> bool {
    opts.video && (!depth || opts.lerobot_version == LerobotVersion::V06)
}

/// One series per value `p` selects (interpolated on its own), and the values' names
/// (`crate::decode::path_samples`: joints by name, so several publishers on one joint-state
/// topic — an arm driver and a gripper driver, each with its own joints, rate and order — give
/// one layout whichever spoke first). `None` when the episode has no such topic.
fn path_series(
    sel: &Selection,
    p: &TopicPath,
) -> anyhow::Result<Option<(Vec<Series>, Vec<String>)>> {
    let Some(ps) = crate::decode::path_samples(sel, p)? else {
        return Ok(None);
    };
    ps.warn_skipped(p, None);
    let mut series: Vec<Series> = ps.names.iter().map(|_| Series::new(1)).collect();
    for (t, values) in &ps.samples {
        for (i, x) in values {
            series[*i].push(*t, &[*x]);
        }
    }
    for s in &mut series {
        s.sort();
    }
    Ok(Some((series, ps.names)))
}

/// The series of every path, in order, and how many the first path gave; an episode lacking
/// one of the topics is an error.
fn paths_series(
    sel: &Selection,
    paths: &[TopicPath],
    what: &str,
) -> anyhow::Result<(Vec<Series>, Vec<String>, usize)> {
    let mut first = 0;
    let mut series = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for p in paths {
        let (s, n) = path_series(sel, p)?.ok_or_else(|| {
            anyhow::anyhow!("--{what} {p}: no messages on {} in this episode", p.topic)
        })?;
        if let Some(dup) = n.iter().find(|x| names.contains(x)) {
            anyhow::bail!("--{what} {p}: {dup:?} is already selected by an earlier path");
        }
        if series.is_empty() {
            first = s.len();
        }
        series.extend(s);
        names.extend(n);
    }
    Ok((series, names, first))
}

fn joint_path(topic: &str) -> TopicPath {
    TopicPath {
        topic: topic.to_string(),
        field: hal::ros::FieldPath(vec![hal::ros::Seg::Field("position".into())]),
    }
}

fn short(topic: &str) -> String {
    super::sanitize(
        topic
            .trim_start_matches('/')
            .trim_end_matches("/wrench")
            .trim_start_matches("tactile/"),
    )
}

fn streams(sel: &Selection, opts: &ExportOptions) -> anyhow::Result<EpisodeStreams> {
    let (mut state, mut state_names, njoints) = if opts.state_paths.is_empty() {
        let (s, n) = path_series(sel, &joint_path(&opts.joint_topic))?
            .ok_or_else(|| anyhow::anyhow!("no joint states on {}", opts.joint_topic))?;
        let k = s.len();
        (s, n, k)
    } else {
        let (s, n, first) = paths_series(sel, &opts.state_paths, "state")?;
        (s, n, first)
    };
    let extras = opts.state_paths.is_empty();
    // sorted by topic: the same layout whatever order the channels were recorded in
    let topics_of = |schema: &str| -> Vec<String> {
        let mut t: Vec<String> = sel
            .channels
            .values()
            .filter(|c| sel.schemas.get(&c.schema_id).is_some_and(|s| s == schema))
            .map(|c| c.topic.clone())
            .collect();
        t.sort();
        t
    };
    if extras && opts.wrench {
        for topic in topics_of("geometry_msgs/msg/WrenchStamped") {
            let mut s = Series::new(6);
            for m in sel.by_topic(&topic) {
                if let Ok(w) = decode::<WrenchStamped>(&m.data) {
                    let (f, t) = (&w.wrench.force, &w.wrench.torque);
                    s.push(m.header.log_time, &[f.x, f.y, f.z, t.x, t.y, t.z]);
                }
            }
            if s.t.is_empty() {
                continue;
            }
            s.sort();
            let p = short(&topic);
            for c in [
                "force_x", "force_y", "force_z", "torque_x", "torque_y", "torque_z",
            ] {
                state_names.push(format!("{p}.{c}"));
            }
            state.push(s);
        }
    }
    if extras && opts.tactile {
        for topic in topics_of("demotape_msgs/msg/TactileArray") {
            let mut s = Series::new(1);
            for m in sel.by_topic(&topic) {
                if let Ok(ta) = decode::<TactileArray>(&m.data)
                    && !ta.pressure.is_empty()
                {
                    let mean = ta.pressure.iter().map(|p| f64::from(*p)).sum::<f64>()
                        / ta.pressure.len() as f64;
                    s.push(m.header.log_time, &[mean]);
                }
            }
            if s.t.is_empty() {
                continue;
            }
            s.sort();
            state_names.push(format!("tactile.{}.mean_kpa", short(&topic)));
            state.push(s);
        }
    }
    let action = if opts.action_paths.is_empty() {
        path_series(sel, &joint_path(&opts.action_topic))?
    } else {
        let (s, n, _) = paths_series(sel, &opts.action_paths, "action")?;
        Some((s, n))
    };
    let mut cameras: Vec<Camera> = Vec::new();
    if !opts.no_images {
        for c in sel.channels.values() {
            let schema = sel.schemas.get(&c.schema_id).map_or("", String::as_str);
            let depth = opts.depth && is_depth_camera(&c.topic, schema);
            if !is_camera(&c.topic, schema) && !depth {
                continue;
            }
            let key = camera_key(&c.topic);
            let short = key.trim_start_matches("observation.images.");
            if !opts.cameras.is_empty() && !opts.cameras.iter().any(|x| x == short) {
                continue;
            }
            cameras.push(Camera {
                key,
                topic: c.topic.clone(),
                schema: schema.to_string(),
                depth,
            });
        }
        cameras.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.topic.cmp(&b.topic)));
    }
    Ok(EpisodeStreams {
        state,
        state_names,
        joints: njoints,
        action,
        cameras,
    })
}

/// The dataset's features, fixed by the first exported episode.
#[derive(Clone, Debug, PartialEq)]
struct Layout {
    state_names: Vec<String>,
    action_names: Vec<String>,
    action_from_topic: bool,
    cameras: Vec<String>,
    /// Per camera: a depth map.
    depth: Vec<bool>,
    /// (height, width) per camera, known after its first frame.
    sizes: BTreeMap<String, (u32, u32)>,
}

fn layout_of(s: &EpisodeStreams) -> Layout {
    let (action_names, from_topic) = match &s.action {
        Some((_, n)) => (n.clone(), true),
        None => (s.state_names[..s.joints].to_vec(), false),
    };
    Layout {
        state_names: s.state_names.clone(),
        action_names,
        action_from_topic: from_topic,
        cameras: s.cameras.iter().map(|c| c.key.clone()).collect(),
        depth: s.cameras.iter().map(|c| c.depth).collect(),
        sizes: BTreeMap::new(),
    }
}

/// Data columns in order (lerobot's own order: features first, then the index columns).
fn columns(layout: &Layout, opts: &ExportOptions) -> Vec<(String, Kind)> {
    let mut c = vec![
        (
            "observation.state".to_string(),
            Kind::F32Vec(layout.state_names.len()),
        ),
        (
            "action".to_string(),
            Kind::F32Vec(layout.action_names.len()),
        ),
    ];
    for (k, depth) in layout.cameras.iter().zip(&layout.depth) {
        if !in_video(opts, *depth) {
            c.push((k.clone(), Kind::Image));
        }
    }
    for (n, k) in [
        ("timestamp", Kind::F32),
        ("frame_index", Kind::I64),
        ("episode_index", Kind::I64),
        ("index", Kind::I64),
        ("task_index", Kind::I64),
        ("phase_index", Kind::I64),
        ("episode_outcome_index", Kind::I64),
        ("annotation_source_index", Kind::I64),
    ] {
        c.push((n.to_string(), k));
    }
    if opts.lerobot_version == LerobotVersion::V06 {
        c.push(("language_persistent".into(), Kind::Language(true)));
        c.push(("language_events".into(), Kind::Language(false)));
    }
    c
}

/// lerobot 0.6's persistent language rows of an episode: a `subtask` row per phase (at its
/// start, seconds from the episode's first frame), and the outcome as a `memory` row from
/// the release (else the last phase) on. lerobot's event styles (interjection, vqa, trace,
/// tool calls) do not describe a label, so the outcome is a memory, which persists.
fn language_rows(
    labels: &Labels,
    t0: u64,
    text: &BTreeMap<String, String>,
) -> Vec<super::arrow_io::LangRow> {
    use super::arrow_io::LangRow;
    let rel = |t: u64| (t.saturating_sub(t0) as f64 / 1e9) as f32;
    let mut rows: Vec<LangRow> = labels
        .phases
        .iter()
        .map(|(p, a, _)| LangRow {
            role: "assistant".into(),
            content: Some(text.get(p).cloned().unwrap_or_else(|| p.clone())),
            style: Some("subtask".into()),
            timestamp: rel(*a),
            camera: None,
        })
        .collect();
    if let Some(o) = &labels.outcome {
        let at = labels
            .phases
            .iter()
            .find(|p| p.0 == "release")
            .or(labels.phases.last())
            .map_or(0.0, |p| rel(p.1));
        rows.push(LangRow {
            role: "assistant".into(),
            content: Some(format!("outcome: {o}")),
            style: Some("memory".into()),
            timestamp: at,
            camera: None,
        });
    }
    // lerobot's writer order: by timestamp, then style, then role
    rows.sort_by(|a, b| {
        a.timestamp
            .total_cmp(&b.timestamp)
            .then_with(|| a.style.cmp(&b.style))
            .then_with(|| a.role.cmp(&b.role))
    });
    rows
}

/// Everything that accumulates across episodes.
struct Dataset {
    opts: ExportOptions,
    root: PathBuf,
    layout: Option<Layout>,
    rows: Option<Rows>,
    file: Option<DataFile>,
    file_no: usize,
    tasks: Vec<String>,
    episodes: Vec<EpisodeRow>,
    stats: BTreeMap<String, FeatureStats>,
    index: usize,
    /// Per camera (layout order): the mp4 being written, across episodes.
    videos: Vec<VideoFile>,
}

/// One camera's current video file: its number (chunk/file index) and its encoder, which
/// stays open from episode to episode until the file passes `video_file_mb`.
#[derive(Default)]
struct VideoFile {
    file_no: usize,
    enc: Option<Encoder>,
}

impl VideoFile {
    fn frames(&self) -> u64 {
        self.enc.as_ref().map_or(0, |e| e.frames)
    }
}

struct EpisodeRow {
    task: String,
    length: usize,
    data_file: usize,
    from: usize,
    to: usize,
    outcome: String,
    source: &'static str,
    path: String,
    start_ns: u64,
    offsets: BTreeMap<String, f64>,
    /// The recorder's robot id (`demotape.episode` → `robot_id`), empty if unknown.
    robot: String,
    /// Per camera (layout order): video file number, first and end frame in it.
    videos: Vec<(usize, u64, u64)>,
    /// Per feature: its stats.json-style entry for this episode, whether it is an image,
    /// whether its min/max are integers.
    stats: BTreeMap<String, (serde_json::Value, bool, bool)>,
}

/// The entry of feature `name` in the dataset's and in the episode's statistics.
fn both<'a>(
    global: &'a mut BTreeMap<String, FeatureStats>,
    episode: &'a mut BTreeMap<String, FeatureStats>,
    name: &str,
    make: impl Fn() -> FeatureStats,
) -> [&'a mut FeatureStats; 2] {
    [
        global.entry(name.to_string()).or_insert_with(&make),
        episode.entry(name.to_string()).or_insert_with(&make),
    ]
}

/// lerobot's statistics, in the order its `compute_episode_stats` returns them.
const STAT_NAMES: [&str; 10] = [
    "min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99",
];

/// Max bytes of images in one row group.
const ROW_GROUP_IMAGE_BYTES: usize = 64 << 20;
/// Max rows in one row group.
const ROW_GROUP_ROWS: usize = 2000;

/// The output directory as a clean absolute path with a last component (`out/` → `out`).
fn normalize_out(out: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                clean.pop();
            }
            c => clean.push(c),
        }
    }
    if clean.file_name().is_none() {
        anyhow::bail!(
            "{}: name the dataset directory itself (it is built beside it and renamed into place)",
            out.display()
        );
    }
    Ok(clean)
}

/// Put the complete dataset `new` at `out`. An existing `out` is renamed aside first, the new
/// one renamed in, and only then is the old one removed: at no moment is neither complete on
/// disk (if the second rename fails, the old one is put back).
fn replace_dir(new: &Path, out: &Path) -> anyhow::Result<()> {
    if !out.exists() {
        return std::fs::rename(new, out)
            .map_err(|e| anyhow::anyhow!("{} → {}: {e}", new.display(), out.display()));
    }
    let aside = PathBuf::from(format!("{}.replaced-{}", out.display(), std::process::id()));
    std::fs::rename(out, &aside)
        .map_err(|e| anyhow::anyhow!("{} → {}: {e}", out.display(), aside.display()))?;
    if let Err(e) = std::fs::rename(new, out) {
        let back = std::fs::rename(&aside, out);
        anyhow::bail!(
            "{} → {}: {e}{}",
            new.display(),
            out.display(),
            match back {
                Ok(()) => " (the old dataset is in place again)".to_string(),
                Err(b) => format!(
                    " (and putting the old dataset back failed: {b}; it is at {})",
                    aside.display()
                ),
            }
        );
    }
    std::fs::remove_dir_all(&aside).map_err(|e| {
        anyhow::anyhow!(
            "{}: the new dataset is in place, but removing the old one failed: {e}",
            aside.display()
        )
    })
}

/// Export `episodes` (files, or directories searched for .mcap) as a LeRobot v3.0 dataset.
pub fn export(episodes: &[PathBuf], opts: &ExportOptions) -> anyhow::Result<ExportReport> {
    let started = std::time::Instant::now();
    if opts.fps == 0 {
        anyhow::bail!("--fps must be at least 1");
    }
    let q = &opts.depth_quant;
    if opts.depth
        && !(q.min_m.is_finite()
            && q.max_m.is_finite()
            && q.max_m > q.min_m
            && (!q.use_log || q.min_m + q.shift_m > 0.0))
    {
        anyhow::bail!(
            "depth quantization: --depth-max ({}) must exceed --depth-min ({}), and for log \
             codes --depth-min + --depth-shift ({}) must be positive",
            q.max_m,
            q.min_m,
            q.shift_m
        );
    }
    if opts.video {
        super::video::check_codec(opts.video_settings.codec)?;
        if opts.depth && opts.lerobot_version == LerobotVersion::V06 {
            super::video::check_depth_codec()?;
        }
    }
    // `DIR/`, `DIR/.` and `DIR` are one directory: the build dir and the old dataset's place
    // aside are its siblings, never inside it.
    let out = normalize_out(&opts.out)?;
    let opts = &ExportOptions {
        out,
        ..opts.clone()
    };
    if opts.out.exists() {
        let empty = std::fs::read_dir(&opts.out).is_ok_and(|mut d| d.next().is_none());
        if !empty && !opts.force {
            anyhow::bail!(
                "{}: exists and is not empty (use --force to replace it)",
                opts.out.display()
            );
        }
    }
    let root = PathBuf::from(format!("{}.partial", opts.out.display()));
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
    }
    std::fs::create_dir_all(&root).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
    let paths = crate::label::collect(episodes);
    let mut ds = Dataset {
        opts: opts.clone(),
        root: root.clone(),
        layout: None,
        rows: None,
        file: None,
        file_no: 0,
        tasks: Vec::new(),
        episodes: Vec::new(),
        stats: BTreeMap::new(),
        index: 0,
        videos: Vec::new(),
    };
    let mut kept = Vec::new();
    let mut excluded = Vec::new();
    let bar = if opts.progress {
        indicatif::ProgressBar::new(paths.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} episodes, {msg}",
        )
        .expect("valid template"),
    );
    for path in &paths {
        bar.set_message(format!("{} frames", ds.index));
        let before = (ds.index, ds.episodes.len());
        let r = episode(&mut ds, path, &bar);
        if r.is_err() && before != (ds.index, ds.episodes.len()) {
            // rows of a half-exported episode are already in the data file: the dataset
            // would be inconsistent, so stop here (the partial directory is left to look at)
            let e = r.expect_err("checked");
            anyhow::bail!(
                "{e:#}\nexport stopped: the episode failed after some of its frames were written; \
                 {} is incomplete",
                root.display()
            );
        }
        match r {
            Ok(Ok(k)) => kept.push(k),
            Ok(Err(reason)) => excluded.push(Excluded {
                path: path.clone(),
                reason,
                error: false,
            }),
            Err(e) => {
                tracing::error!("{e:#}");
                excluded.push(Excluded {
                    path: path.clone(),
                    reason: format!("{e:#}"),
                    error: true,
                })
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let Some(layout) = ds.layout.clone() else {
        let _ = std::fs::remove_dir_all(&root);
        if paths.is_empty() {
            anyhow::bail!(
                "no .mcap episode found in {} (directories are searched recursively; companion \
                 *.annotations*.mcap files are not episodes)",
                episodes
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        anyhow::bail!(
            "no episode to export ({} excluded: {})",
            excluded.len(),
            excluded
                .iter()
                .map(|e| {
                    let p = e.path.display().to_string();
                    if e.reason.starts_with(&p) {
                        e.reason.clone()
                    } else {
                        format!("{p}: {}", e.reason)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        );
    };
    let data_files = ds.file_no + usize::from(ds.file.is_some());
    for v in &mut ds.videos {
        if let Some(e) = v.enc.take() {
            e.finish()?;
        }
    }
    if let Some(mut f) = ds.file.take() {
        if let Some(rows) = ds.rows.as_mut() {
            f.write(rows)?;
        }
        f.close()?;
    }
    write_meta(&ds, &layout)?;
    replace_dir(&root, &opts.out)?;
    Ok(ExportReport {
        out: opts.out.clone(),
        fps: opts.fps,
        kept,
        excluded,
        total_frames: ds.index,
        action_source: action_source(&layout, opts),
        state_names: layout.state_names.clone(),
        cameras: layout.cameras.clone(),
        data_files,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn action_source(layout: &Layout, opts: &ExportOptions) -> String {
    if !opts.action_paths.is_empty() {
        let p: Vec<String> = opts.action_paths.iter().map(ToString::to_string).collect();
        format!("paths {}", p.join(", "))
    } else if layout.action_from_topic {
        format!("topic {}", opts.action_topic)
    } else {
        "next_state".to_string()
    }
}

/// Export one episode: `Ok(Err(reason))` when it is filtered out.
fn episode(
    ds: &mut Dataset,
    path: &Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Result<Kept, String>> {
    let opts = ds.opts.clone();
    if path.components().any(|c| c.as_os_str() == "discarded") {
        return Ok(Err("discarded by the operator".into()));
    }
    // a split episode is exported whole, from this part on
    let mut parts = crate::read::episode_parts(path)?;
    if let Some(m) = &parts.missing {
        return Ok(Err(format!(
            "its later part {} is missing: not exported cut short (put that file back beside \
             the others)",
            m.display()
        )));
    }
    let meta = parts.metadata();
    let labels = load_labels(path, opts.labels_dir.as_deref(), &meta)?;
    let task = meta
        .get("demotape.episode")
        .and_then(|m| m.get("task"))
        .filter(|t| !t.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| opts.default_task.clone());
    let f = &opts.filter;
    if !f.tasks.is_empty() && !f.tasks.contains(&task) {
        return Ok(Err(format!("task {task:?} not selected")));
    }
    if f.labeled && (labels.outcome.is_none() || labels.phases.is_empty()) {
        return Ok(Err(
            "no labels (run `demotape annotate` first, or drop --labeled)".into(),
        ));
    }
    if !f.outcomes.is_empty() {
        match &labels.outcome {
            None => return Ok(Err("no outcome label".into())),
            Some(o) if !f.outcomes.contains(o) => {
                return Ok(Err(format!("outcome {o} not selected")));
            }
            _ => {}
        }
    }
    if f.require_gates && labels.gates_pass == Some(false) {
        return Ok(Err(format!(
            "quality gates failed: {}",
            labels.failed_gates.join(", ")
        )));
    }
    // 1. the small streams
    let wanted: Vec<String> = {
        let s = &parts.summaries[0].sel;
        s.channels
            .values()
            .filter(|c| {
                let schema = s.schemas.get(&c.schema_id).map_or("", String::as_str);
                let defaults = opts.state_paths.is_empty();
                let on_path = |paths: &[TopicPath]| paths.iter().any(|p| p.topic == c.topic);
                on_path(&opts.state_paths)
                    || on_path(&opts.action_paths)
                    || (defaults && c.topic == opts.joint_topic)
                    || (opts.action_paths.is_empty() && c.topic == opts.action_topic)
                    || (defaults && opts.wrench && schema == "geometry_msgs/msg/WrenchStamped")
                    || (defaults && opts.tactile && schema == "demotape_msgs/msg/TactileArray")
            })
            .map(|c| c.topic.clone())
            .collect()
    };
    let sel = read_selected_parts(&mut parts, |t, _| wanted.iter().any(|w| w == t))?;
    let st = streams(&sel, &opts).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let this = layout_of(&st);
    match &ds.layout {
        None => {
            let mut l = this.clone();
            l.sizes.clear();
            ds.layout = Some(l);
        }
        Some(l) => {
            let differs = l.state_names != this.state_names
                || l.action_names != this.action_names
                || l.action_from_topic != this.action_from_topic
                || l.cameras != this.cameras
                || l.depth != this.depth;
            if differs {
                return Ok(Err(format!(
                    "its streams differ from the dataset's first episode (state {} values, \
                     cameras [{}], action {}) — export it separately",
                    this.state_names.len(),
                    this.cameras.join(", "),
                    if this.action_from_topic {
                        "recorded"
                    } else {
                        "next state"
                    }
                )));
            }
        }
    }
    let layout = ds.layout.clone().expect("set above");
    // 2. the grid
    let mut parts: Vec<(PathBuf, crate::read::Summary)> =
        parts.files.into_iter().zip(parts.summaries).collect();
    // per part, each camera's channel id there (ids may differ between files)
    let part_cam_ids: Vec<Vec<Option<u16>>> = parts
        .iter()
        .map(|(_, s)| {
            st.cameras
                .iter()
                .map(|cam| {
                    s.sel
                        .channels
                        .values()
                        .find(|c| c.topic == cam.topic)
                        .map(|c| c.id)
                })
                .collect()
        })
        .collect();
    let mut cam_times: Vec<Vec<u64>> = Vec::new();
    for (i, Camera { key, .. }) in st.cameras.iter().enumerate() {
        let mut t = Vec::new();
        for ((p, s), ids) in parts.iter_mut().zip(&part_cam_ids) {
            let Some(id) = ids[i] else { continue };
            for ci in &s.chunk_index {
                t.extend(message_times(p, &mut s.file, ci, id)?);
            }
        }
        t.sort_unstable();
        t.dedup();
        if t.is_empty() {
            return Ok(Err(format!("camera {key} has no frames")));
        }
        cam_times.push(t);
    }
    let mut t0 = 0u64;
    let mut t1 = u64::MAX;
    for s in st.state.iter().chain(st.action.iter().flat_map(|a| &a.0)) {
        t0 = t0.max(s.first().unwrap_or(u64::MAX));
        t1 = t1.min(s.last().unwrap_or(0));
    }
    for t in &cam_times {
        t0 = t0.max(t[0]);
        t1 = t1.min(*t.last().expect("non-empty"));
    }
    if t1 <= t0 {
        return Ok(Err("its streams do not overlap in time".into()));
    }
    let mut n = 0u64;
    while t0 + grid_offset_ns(n, opts.fps) <= t1 {
        n += 1;
    }
    let n = n as usize;
    if n < 2 {
        return Ok(Err(format!("too short ({n} frame at {} fps)", opts.fps)));
    }
    let grid: Vec<u64> = (0..n as u64)
        .map(|k| t0 + grid_offset_ns(k, opts.fps))
        .collect();
    // nearest camera frame per grid time
    let mut chosen: Vec<Vec<u64>> = Vec::new();
    let mut offsets: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (Camera { key, .. }, times) in st.cameras.iter().zip(&cam_times) {
        let mut c = Vec::with_capacity(n);
        let mut off = Vec::with_capacity(n);
        for &g in &grid {
            let i = times.partition_point(|&x| x < g);
            let best = if i == 0 {
                times[0]
            } else if i == times.len() {
                times[i - 1]
            } else if times[i] - g < g - times[i - 1] {
                times[i]
            } else {
                times[i - 1]
            };
            off.push(best.abs_diff(g) as f64 / 1e6);
            c.push(best);
        }
        off.sort_by(f64::total_cmp);
        offsets.insert(key.clone(), (off[n - 1], off[n / 2]));
        chosen.push(c);
    }
    // 3. rows
    let episode_index = ds.episodes.len();
    let task_index = match ds.tasks.iter().position(|t| *t == task) {
        Some(i) => i,
        None => {
            ds.tasks.push(task.clone());
            ds.tasks.len() - 1
        }
    };
    let outcome_index = labels
        .outcome
        .as_ref()
        .and_then(|o| OUTCOMES.iter().position(|x| x == o))
        .map_or(-1, |i| i as i64);
    let source_index = SOURCES
        .iter()
        .position(|s| *s == labels.source)
        .unwrap_or(0) as i64;
    let spec = columns(&layout, &opts);
    // broadcast to every frame of the episode, as lerobot's writer does
    let persistent = language_rows(&labels, t0, &opts.subtask_text);
    if ds.rows.is_none() {
        ds.rows = Some(Rows::new(&spec));
    }
    if ds.file.is_none() {
        let rows = ds.rows.as_ref().expect("set");
        ds.file = Some(DataFile::create(
            &ds.root.join(data_path(ds.file_no)),
            rows.schema(),
        )?);
    }
    let from = ds.index;
    let data_file = ds.file_no;
    if opts.video && ds.videos.len() < st.cameras.len() {
        ds.videos.resize_with(st.cameras.len(), VideoFile::default);
    }
    // where this episode starts in each camera's current video file
    let video_from: Vec<(usize, u64)> = ds.videos.iter().map(|v| (v.file_no, v.frames())).collect();
    // frames waiting for the other cameras: per camera, frame index → frame
    let mut pending: Vec<BTreeMap<usize, std::sync::Arc<Frame>>> =
        st.cameras.iter().map(|_| BTreeMap::new()).collect();
    // which frame indexes each camera message (by time) serves
    let mut wanted_at: Vec<HashMap<u64, Vec<usize>>> = chosen
        .iter()
        .map(|c| {
            let mut m: HashMap<u64, Vec<usize>> = HashMap::new();
            for (k, t) in c.iter().enumerate() {
                m.entry(*t).or_default().push(k);
            }
            m
        })
        .collect();
    let mut next_row = 0usize;
    let mut scratch = Vec::new();
    // this episode's statistics (lerobot's `stats/<feature>/<stat>` columns in meta/episodes)
    let mut ep_stats: BTreeMap<String, FeatureStats> = BTreeMap::new();
    let mut emit = |ds: &mut Dataset,
                    k: usize,
                    images: Vec<std::sync::Arc<Frame>>|
     -> anyhow::Result<()> {
        let g = grid[k];
        scratch.clear();
        for s in &st.state {
            s.at(g, &mut scratch);
        }
        let state: Vec<f64> = scratch.clone();
        let action: Vec<f64> = match &st.action {
            Some((a, _)) => {
                scratch.clear();
                for s in a {
                    s.at(g, &mut scratch);
                }
                scratch.clone()
            }
            None => {
                scratch.clear();
                let next = grid[(k + 1).min(n - 1)];
                for s in &st.state[..st.joints] {
                    s.at(next, &mut scratch);
                }
                scratch.clone()
            }
        };
        let phase = labels
            .phases
            .iter()
            .find(|(_, a, b)| *a <= g && g < *b)
            .or_else(|| labels.phases.last().filter(|(_, _, b)| g == *b))
            .and_then(|(p, _, _)| PHASES.iter().position(|x| x == p))
            .map_or(-1, |i| i as i64);
        // images: PNG-encode in parallel (the expensive part), or feed the encoders
        for (i, img) in images.iter().enumerate() {
            check_size(ds, &layout.cameras[i], img.size())?;
            if !in_video(&opts, layout.depth[i]) {
                continue;
            }
            let v = &mut ds.videos[i];
            if v.enc.is_none() {
                let file = ds.root.join(video_path(&layout.cameras[i], v.file_no));
                let (w, h) = (img.size().1, img.size().0);
                v.enc = Some(match &**img {
                    Frame::Rgb(_) => Encoder::start(&file, w, h, opts.fps, &opts.video_settings)?,
                    Frame::Depth(_) => {
                        Encoder::start_depth(&file, w, h, opts.fps, opts.depth_preset.as_deref())?
                    }
                });
            }
            let enc = v.enc.as_mut().expect("started");
            match &**img {
                Frame::Rgb(rgb) => enc.push(&rgb.pixels)?,
                Frame::Depth(d) => enc.push(&opts.depth_quant.frame_bytes(&d.mm))?,
            }
        }
        let pngs: Vec<Vec<u8>> = std::thread::scope(|sc| {
            let hs: Vec<_> = images
                .iter()
                .zip(&layout.depth)
                .filter(|(_, depth)| !in_video(&opts, **depth))
                .map(|(img, _)| {
                    sc.spawn(move || match &**img {
                        Frame::Rgb(rgb) => encode_png(rgb),
                        Frame::Depth(d) => super::cdr::encode_png16(d),
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("png encoder panicked"))
                .collect::<Result<Vec<_>, String>>()
        })
        .map_err(|e| anyhow::anyhow!("PNG encoding: {e}"))?;
        if k.is_multiple_of(10) {
            for (i, img) in images.iter().enumerate() {
                let make: fn() -> FeatureStats = match &**img {
                    Frame::Rgb(_) => FeatureStats::image,
                    Frame::Depth(_) => FeatureStats::depth,
                };
                for s in both(&mut ds.stats, &mut ep_stats, &layout.cameras[i], make) {
                    match &**img {
                        Frame::Rgb(rgb) => s.push_rgb(&rgb.pixels, 97),
                        Frame::Depth(d) => s.push_depth(&d.mm, 97),
                    }
                }
            }
        }
        let index = ds.index;
        let ts = (k as f64 / f64::from(opts.fps)) as f32;
        let scalars: [(&str, f64); 8] = [
            ("timestamp", f64::from(ts)),
            ("frame_index", k as f64),
            ("episode_index", episode_index as f64),
            ("index", index as f64),
            ("task_index", task_index as f64),
            ("phase_index", phase as f64),
            ("episode_outcome_index", outcome_index as f64),
            ("annotation_source_index", source_index as f64),
        ];
        let state32: Vec<f64> = state.iter().map(|x| f64::from(*x as f32)).collect();
        let action32: Vec<f64> = action.iter().map(|x| f64::from(*x as f32)).collect();
        for s in both(&mut ds.stats, &mut ep_stats, "observation.state", || {
            FeatureStats::new(state.len(), false)
        }) {
            s.push(&state32);
        }
        for s in both(&mut ds.stats, &mut ep_stats, "action", || {
            FeatureStats::new(action.len(), false)
        }) {
            s.push(&action32);
        }
        for (name, v) in scalars {
            for s in both(&mut ds.stats, &mut ep_stats, name, || {
                FeatureStats::new(1, name != "timestamp")
            }) {
                s.push(&[v]);
            }
        }
        let rows = ds.rows.as_mut().expect("set");
        let mut png_iter = pngs.into_iter();
        for (name, col) in rows.names.iter().zip(rows.cols.iter_mut()) {
            use super::arrow_io::Column as C;
            match (name.as_str(), col) {
                ("observation.state", C::F32Vec(_, v)) => v.extend(state.iter().map(|x| *x as f32)),
                ("action", C::F32Vec(_, v)) => v.extend(action.iter().map(|x| *x as f32)),
                (_, C::Image(v)) => {
                    let p = png_iter.next().expect("one PNG per image column");
                    rows.image_bytes += p.len();
                    v.push(p);
                }
                ("timestamp", C::F32(v)) => v.push(ts),
                ("language_persistent", C::Language(_, v)) => v.push(persistent.clone()),
                ("language_events", C::Language(_, v)) => v.push(Vec::new()),
                (n, C::I64(v)) => {
                    let x = scalars
                        .iter()
                        .find(|(s, _)| *s == n)
                        .map(|(_, x)| *x as i64)
                        .expect("every int column is a scalar");
                    v.push(x);
                }
                (n, _) => anyhow::bail!("internal: column {n} has an unexpected type"),
            }
        }
        rows.len += 1;
        ds.index += 1;
        if rows.len >= ROW_GROUP_ROWS || rows.image_bytes >= ROW_GROUP_IMAGE_BYTES {
            ds.file.as_mut().expect("open").write(rows)?;
        }
        Ok(())
    };
    if st.cameras.is_empty() {
        for k in 0..n {
            emit(ds, k, Vec::new())?;
            if k % 256 == 0 {
                bar.set_message(format!("{} frames", ds.index));
            }
        }
    } else {
        let mut raw = Vec::new();
        for ((path, part), cam_ids) in parts.iter_mut().zip(&part_cam_ids) {
            let crate::read::Summary {
                file,
                len,
                chunk_index,
                ..
            } = part;
            let mut order: Vec<&mcap::records::ChunkIndex> = chunk_index
                .iter()
                .filter(|ci| {
                    cam_ids
                        .iter()
                        .flatten()
                        .any(|id| ci.message_index_offsets.contains_key(id))
                })
                .collect();
            order.sort_by_key(|ci| (ci.message_start_time, ci.chunk_start_offset));
            for ci in order {
                let plain = read_chunk(path, file, *len, ci, &mut raw)?;
                // the frames this chunk serves, decoded in parallel (JPEG decoding is the
                // expensive part for compressed cameras)
                let mut jobs: Vec<(usize, Vec<usize>, usize, &[u8])> = Vec::new();
                for m in chunk_messages(path, ci, &plain) {
                    let RawMessage {
                        at,
                        channel,
                        log_time,
                        data,
                    } = m?;
                    let Some(ci_cam) = cam_ids.iter().position(|&x| x == Some(channel)) else {
                        continue;
                    };
                    let Some(ks) = wanted_at[ci_cam].remove(&log_time) else {
                        continue;
                    };
                    jobs.push((ci_cam, ks, at, data));
                }
                let frames = par_map(&jobs, |(cam, _, _, data)| {
                    let c = &st.cameras[*cam];
                    camera_frame(&c.schema, c.depth, data)
                });
                for ((ci_cam, ks, at, _), rgb) in jobs.into_iter().zip(frames) {
                    let rgb = rgb.map_err(|e| {
                        anyhow::anyhow!(
                            "{}: {} message at byte {} of the chunk at {}: {e}",
                            path.display(),
                            st.cameras[ci_cam].topic,
                            at,
                            ci.chunk_start_offset
                        )
                    })?;
                    let rgb = std::sync::Arc::new(rgb);
                    for k in ks {
                        pending[ci_cam].insert(k, rgb.clone());
                    }
                }
                // emit every row whose frames are all here
                while next_row < n && pending.iter().all(|p| p.contains_key(&next_row)) {
                    let imgs: Vec<_> = pending
                        .iter_mut()
                        .map(|p| p.remove(&next_row).expect("checked"))
                        .collect();
                    emit(ds, next_row, imgs)?;
                    next_row += 1;
                    if next_row.is_multiple_of(64) {
                        bar.set_message(format!("{} frames", ds.index));
                    }
                }
            }
        }
        if next_row < n {
            anyhow::bail!(
                "{}: camera frames listed in the message index were not found in the chunks \
                 (frame {next_row} of {n}); run `demotape inspect` on it",
                path.display()
            );
        }
    }
    // this episode's span in each camera's video; a file past its size is closed between
    // episodes (never inside one), and the next episode starts the next file
    let mut videos = Vec::new();
    for (i, v) in ds.videos.iter_mut().enumerate() {
        let (file_no, first) = video_from.get(i).copied().unwrap_or((v.file_no, 0));
        videos.push((file_no, first, v.frames()));
        let full = v.enc.as_ref().is_some_and(|e| {
            std::fs::metadata(e.path()).map_or(0, |m| m.len()) >= opts.video_file_mb << 20
        });
        if full {
            v.enc.take().expect("open").finish()?;
            v.file_no += 1;
        }
    }
    // rows of this episode stay in the current file; roll over between episodes only
    if let Some(rows) = ds.rows.as_mut() {
        ds.file.as_mut().expect("open").write(rows)?;
    }
    let rolled = ds
        .file
        .as_ref()
        .is_some_and(|f| f.bytes() as u64 >= opts.data_file_mb << 20);
    if rolled {
        ds.file.take().expect("open").close()?;
        ds.file_no += 1;
    }
    ds.episodes.push(EpisodeRow {
        task: task.clone(),
        length: n,
        data_file,
        from,
        to: ds.index,
        outcome: labels.outcome.clone().unwrap_or_default(),
        source: labels.source,
        path: path.display().to_string(),
        start_ns: t0,
        offsets: offsets.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
        robot: meta
            .get("demotape.episode")
            .and_then(|m| m.get("robot_id"))
            .map(|r| r.trim().to_string())
            .unwrap_or_default(),
        videos,
        stats: ep_stats
            .iter()
            .map(|(k, s)| (k.clone(), (s.to_json(), s.is_image(), s.is_integer())))
            .collect(),
    });
    Ok(Ok(Kept {
        path: path.to_path_buf(),
        episode_index,
        frames: n,
        task,
        outcome: labels.outcome,
        source: labels.source,
        start_ns: t0,
        camera_offset_ms: offsets,
    }))
}

/// `f` over `items` on all cores (in order); one item, or one core, runs here.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("frame decoder panicked"))
            .collect()
    })
}

/// A decoded camera frame.
enum Frame {
    Rgb(Rgb),
    Depth(super::cdr::Depth),
}

impl Frame {
    /// (height, width)
    fn size(&self) -> (u32, u32) {
        match self {
            Frame::Rgb(r) => (r.height, r.width),
            Frame::Depth(d) => (d.height, d.width),
        }
    }
}

fn camera_frame(schema: &str, depth: bool, data: &[u8]) -> Result<Frame, String> {
    if schema == <CompressedImage as RosMessage>::TYPE_NAME {
        let c: CompressedImage = decode(data)?;
        return super::cdr::decode_compressed(&c.data)
            .map(Frame::Rgb)
            .map_err(|e| format!("CompressedImage (format {:?}): {e}", c.format));
    }
    let img: Image = decode(data)?;
    if depth {
        super::cdr::image_to_depth(&img).map(Frame::Depth)
    } else {
        image_to_rgb(&img).map(Frame::Rgb)
    }
}

fn check_size(ds: &mut Dataset, key: &str, (height, width): (u32, u32)) -> anyhow::Result<()> {
    let l = ds.layout.as_mut().expect("set");
    match l.sizes.get(key) {
        None => {
            l.sizes.insert(key.to_string(), (height, width));
        }
        Some(&(h, w)) if (h, w) != (height, width) => {
            anyhow::bail!("camera {key}: {width}x{height} frames, but the dataset's are {w}x{h}")
        }
        _ => {}
    }
    Ok(())
}

/// `robot_type` for info.json: `--robot-type`, else the recorder's robot id of the exported
/// episodes (several distinct ids are joined by `,`), else `unknown`.
fn robot_type(opts: &ExportOptions, episodes: &[EpisodeRow]) -> String {
    if let Some(r) = &opts.robot_type {
        return r.clone();
    }
    let ids: std::collections::BTreeSet<&str> = episodes
        .iter()
        .map(|e| e.robot.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    if ids.is_empty() {
        "unknown".into()
    } else {
        ids.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn write_meta(ds: &Dataset, layout: &Layout) -> anyhow::Result<()> {
    let opts = &ds.opts;
    let meta = ds.root.join("meta");
    std::fs::create_dir_all(&meta).map_err(|e| anyhow::anyhow!("{}: {e}", meta.display()))?;
    // info.json
    let mut features = serde_json::Map::new();
    features.insert(
        "observation.state".into(),
        serde_json::json!({"dtype": "float32", "shape": [layout.state_names.len()], "names": layout.state_names}),
    );
    features.insert(
        "action".into(),
        serde_json::json!({"dtype": "float32", "shape": [layout.action_names.len()], "names": layout.action_names}),
    );
    for (key, &depth) in layout.cameras.iter().zip(&layout.depth) {
        let (h, w) = layout.sizes.get(key).copied().unwrap_or((0, 0));
        let video = in_video(opts, depth);
        let mut f = serde_json::json!({"dtype": if video {"video"} else {"image"},
            "shape": [h, w, if depth {1} else {3}], "names": ["height", "width", "channels"]});
        if video && depth {
            // as lerobot 0.6's `get_video_info` with a `DepthEncoderConfig`: the stream's
            // fields, then the encoder's (`video.<field>`), `is_depth_map` and the unit
            // the frames were recorded in
            let q = &opts.depth_quant;
            f["info"] = serde_json::json!({
                "video.height": h, "video.width": w, "video.codec": super::video::DEPTH_CODEC,
                "video.pix_fmt": super::video::DEPTH_PIX_FMT, "video.fps": opts.fps,
                "video.channels": 1, "has_audio": false,
                "video.g": 2, "video.crf": 30, "video.preset": opts.depth_preset,
                "video.fast_decode": 0,
                "video.video_backend": "pyav",
                "video.extra_options": {"x265-params": "lossless=1"},
                "video.depth_min": q.min_m, "video.depth_max": q.max_m,
                "video.shift": q.shift_m, "video.use_log": q.use_log,
                "is_depth_map": true, "depth_unit": "mm"});
        } else if video {
            f["info"] = serde_json::json!({
                "video.height": h, "video.width": w, "video.codec": opts.video_settings.codec.name(),
                "video.pix_fmt": "yuv420p", "video.is_depth_map": false,
                "video.fps": opts.fps, "video.channels": 3, "has_audio": false});
        } else if depth {
            // lerobot 0.6 reads depth images in `depth_unit` (and converts to the unit asked)
            f["info"] = serde_json::json!({"is_depth_map": true, "depth_unit": "mm"});
        }
        features.insert(key.clone(), f);
    }
    for (n, dt) in [
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
        ("phase_index", "int64"),
        ("episode_outcome_index", "int64"),
        ("annotation_source_index", "int64"),
    ] {
        features.insert(
            n.into(),
            serde_json::json!({"dtype": dt, "shape": [1], "names": null}),
        );
    }
    if opts.lerobot_version == LerobotVersion::V06 {
        // as lerobot 0.6's `language_feature_info`
        for n in ["language_persistent", "language_events"] {
            features.insert(
                n.into(),
                serde_json::json!({"dtype": "language", "shape": [1], "names": null}),
            );
        }
    }
    let total_episodes = ds.episodes.len();
    let info = serde_json::json!({
        "codebase_version": "v3.0",
        "robot_type": robot_type(opts, &ds.episodes),
        "total_episodes": total_episodes,
        "total_frames": ds.index,
        "total_tasks": ds.tasks.len(),
        "chunks_size": super::CHUNKS_SIZE,
        "data_files_size_in_mb": opts.data_file_mb,
        "video_files_size_in_mb": opts.video_file_mb,
        "fps": opts.fps,
        "splits": {"train": format!("0:{total_episodes}")},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": if opts.video { serde_json::json!("videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4") } else { serde_json::Value::Null },
        "features": features,
        "demotape": {
            "exporter": concat!("demotape ", env!("CARGO_PKG_VERSION")),
            "action_source": action_source(layout, opts),
            "subtask_text": opts.subtask_text,
            "lerobot_version": match opts.lerobot_version {
                LerobotVersion::V04 => "0.4",
                LerobotVersion::V06 => "0.6",
            },
            "state_paths": opts.state_paths.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "action_note": if layout.action_from_topic {
                "action = the recorded command stream, interpolated at each frame time"
            } else {
                "no command stream was recorded: action = the joint positions of the next frame (the last frame repeats its own)"
            },
            "grid": "frame k at t0 + k/fps on the synchronized reference clock; continuous signals linearly interpolated, cameras the nearest frame",
            "phase_index": PHASES,
            "episode_outcome_index": OUTCOMES,
            "annotation_source_index": SOURCES,
            "unlabeled": -1,
        },
    });
    let write_json = |name: &str, v: &serde_json::Value| -> anyhow::Result<()> {
        let p = meta.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    write_json("info.json", &info)?;
    let mut stats = serde_json::Map::new();
    for (k, s) in &ds.stats {
        stats.insert(k.clone(), s.to_json());
    }
    write_json("stats.json", &serde_json::Value::Object(stats))?;
    write_table(&meta.join("tasks.parquet"), &tasks_batch(&ds.tasks)?)?;
    // episodes
    let e = &ds.episodes;
    let chunk = |f: usize| (f / super::CHUNKS_SIZE) as i64;
    let file = |f: usize| (f % super::CHUNKS_SIZE) as i64;
    let mut cols: Vec<(String, Cell)> = vec![
        (
            "episode_index".into(),
            Cell::I64((0..e.len() as i64).collect()),
        ),
        (
            "tasks".into(),
            Cell::StrList(e.iter().map(|r| vec![r.task.clone()]).collect()),
        ),
        (
            "length".into(),
            Cell::I64(e.iter().map(|r| r.length as i64).collect()),
        ),
        (
            "data/chunk_index".into(),
            Cell::I64(e.iter().map(|r| chunk(r.data_file)).collect()),
        ),
        (
            "data/file_index".into(),
            Cell::I64(e.iter().map(|r| file(r.data_file)).collect()),
        ),
        (
            "dataset_from_index".into(),
            Cell::I64(e.iter().map(|r| r.from as i64).collect()),
        ),
        (
            "dataset_to_index".into(),
            Cell::I64(e.iter().map(|r| r.to as i64).collect()),
        ),
    ];
    if opts.video {
        let fps = f64::from(opts.fps);
        for (i, key) in layout.cameras.iter().enumerate() {
            if !in_video(opts, layout.depth[i]) {
                continue;
            }
            let span = |r: &EpisodeRow| r.videos.get(i).copied().unwrap_or((0, 0, 0));
            cols.push((
                format!("videos/{key}/chunk_index"),
                Cell::I64(e.iter().map(|r| chunk(span(r).0)).collect()),
            ));
            cols.push((
                format!("videos/{key}/file_index"),
                Cell::I64(e.iter().map(|r| file(span(r).0)).collect()),
            ));
            cols.push((
                format!("videos/{key}/from_timestamp"),
                Cell::F64(e.iter().map(|r| span(r).1 as f64 / fps).collect()),
            ));
            cols.push((
                format!("videos/{key}/to_timestamp"),
                Cell::F64(e.iter().map(|r| span(r).2 as f64 / fps).collect()),
            ));
        }
    }
    cols.push((
        "meta/episodes/chunk_index".into(),
        Cell::I64(vec![0; e.len()]),
    ));
    cols.push((
        "meta/episodes/file_index".into(),
        Cell::I64(vec![0; e.len()]),
    ));
    cols.push((
        "demotape/outcome".into(),
        Cell::Str(e.iter().map(|r| r.outcome.clone()).collect()),
    ));
    cols.push((
        "demotape/annotation_source".into(),
        Cell::Str(e.iter().map(|r| r.source.to_string()).collect()),
    ));
    cols.push((
        "demotape/source_file".into(),
        Cell::Str(e.iter().map(|r| r.path.clone()).collect()),
    ));
    cols.push((
        "demotape/start_ns".into(),
        Cell::I64(e.iter().map(|r| r.start_ns as i64).collect()),
    ));
    for key in &layout.cameras {
        cols.push((
            format!("demotape/camera_offset_ms_max/{key}"),
            Cell::F64(
                e.iter()
                    .map(|r| r.offsets.get(key).copied().unwrap_or(0.0))
                    .collect(),
            ),
        ));
    }
    // per-episode statistics of every feature, flattened as lerobot's `flatten_dict` does:
    // `stats/<feature>/<stat>`, vectors as lists, images as [3][1][1]
    let features: std::collections::BTreeSet<&String> =
        e.iter().flat_map(|r| r.stats.keys()).collect();
    for f in features {
        for stat in STAT_NAMES {
            let mut rows = Vec::with_capacity(e.len());
            let (mut image, mut integer) = (false, false);
            for r in e {
                let Some((v, img, int)) = r.stats.get(f) else {
                    anyhow::bail!("episode {} has no statistics of {f}", r.path);
                };
                image = *img;
                integer = *int;
                rows.push(v[stat].clone());
            }
            cols.push((
                format!("stats/{f}/{stat}"),
                Cell::Nested {
                    rows,
                    depth: if image && stat != "count" { 3 } else { 1 },
                    int: stat == "count" || (integer && (stat == "min" || stat == "max")),
                },
            ));
        }
    }
    write_table(
        &meta.join("episodes/chunk-000/file-000.parquet"),
        &table(cols)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::par_map;

    #[test]
    fn par_map_keeps_the_order_of_its_items() {
        for n in [0usize, 1, 2, 7, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let got = par_map(&items, |x| x * 3 + 1);
            assert_eq!(got, items.iter().map(|x| x * 3 + 1).collect::<Vec<_>>());
        }
    }
}
