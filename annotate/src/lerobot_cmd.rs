//! `demotape export lerobot` and `demotape import lerobot`: argument parsing and reports.

use annotate::decode::TopicPath;
use annotate::lerobot::export::{ExportOptions, Filter, export};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// A LeRobot v3.0 dataset that `lerobot`'s LeRobotDataset(repo_id, root=DIR) loads offline.
    ///
    /// The synchronized streams are resampled onto a 1/fps grid: joint positions (and, unless
    /// disabled, wrist wrenches and mean tactile pressure per pad) are interpolated at each
    /// frame time into `observation.state`; each camera contributes its nearest frame (the
    /// offsets are reported); `action` is the recorded command stream (--action-topic) or,
    /// when none was recorded, the next frame's joint positions (info.json says which).
    /// Labels from `demotape annotate` / `demotape review` / the operator become extra
    /// columns: phase_index, episode_outcome_index, annotation_source_index (their names are
    /// in info.json under "demotape"; -1 = unlabeled).
    ///
    /// Episodes failing their quality gates, discarded ones and those not matching the
    /// selection are left out; the summary says which and why.
    ///
    /// Examples:
    ///   demotape export lerobot episodes/ --out datasets/pick --fps 30
    ///   demotape export lerobot episodes/ --out datasets/pick-ok --outcome success --video
    ///   demotape export lerobot bag.mcap --out ds --state /joint_states.position,/gripper/state.data \
    ///       --action /arm_controller/joint_trajectory.points[0].positions,/gripper/command.data
    #[command(verbatim_doc_comment)]
    Lerobot(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Episode files or directories (searched recursively for .mcap).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output dataset directory (built in DIR.partial, renamed when complete).
    #[arg(long)]
    out: PathBuf,
    /// Frames per second of the dataset grid.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Cameras as mp4 video (by ffmpeg, which must be installed) instead of PNG images.
    #[arg(long)]
    video: bool,
    /// Video codec: h264 (libx264), or av1 (libsvtav1, lerobot's own default: about half the
    /// size at equal quality, slower to encode).
    #[arg(long, default_value = "h264", requires = "video")]
    vcodec: annotate::lerobot::video::Codec,
    /// Constant rate factor (lower = better and bigger); default: h264 18, av1 30 (lerobot's).
    #[arg(long, requires = "video")]
    crf: Option<u32>,
    /// Encoder preset; default: h264 veryfast, av1 12 (lerobot's; 0 slowest .. 13 fastest).
    #[arg(long, requires = "video")]
    preset: Option<String>,
    /// No camera features (state, action and labels only).
    #[arg(long, conflicts_with = "video")]
    no_images: bool,
    /// Only these cameras (e.g. head,wrist_right,head_depth); default: every RGB camera (and
    /// with --depth every depth camera).
    #[arg(long, value_delimiter = ',')]
    cameras: Vec<String>,
    /// Depth cameras too (an Image of 16UC1/mono16 millimetres or 32FC1 metres on a topic
    /// naming "depth"), as `observation.images.<name>_depth` with shape [h, w, 1] in mm:
    /// 16-bit PNG images; with --video and --lerobot-version 0.6, lerobot 0.6's depth video
    /// (12-bit log-quantized codes, HEVC lossless by libx265, `is_depth_map` in info.json;
    /// lerobot returns it dequantized, within half a code: 0.66 mm at 0.5 m, 1.9 mm at 8 m).
    /// lerobot 0.4.4 cannot decode depth video, so with 0.4 depth stays PNG beside the RGB
    /// videos.
    #[arg(long, conflicts_with = "no_images")]
    depth: bool,
    /// Depth video quantization (lerobot 0.6's DepthEncoderConfig, metres): code 0.
    #[arg(long, default_value_t = 0.01, requires = "depth")]
    depth_min: f64,
    /// Depth video quantization: code 4095 (metres; farther readings clip to it).
    #[arg(long, default_value_t = 10.0, requires = "depth")]
    depth_max: f64,
    /// Depth video quantization: the shift (metres) of the log mapping.
    #[arg(long, default_value_t = 3.5, requires = "depth")]
    depth_shift: f64,
    /// Depth video quantization: linear instead of logarithmic codes.
    #[arg(long, requires = "depth")]
    depth_linear: bool,
    /// x265 preset of the depth video (lossless whatever it is: faster is bigger). Default:
    /// x265's medium, as lerobot; ultrafast encodes ~2.4x faster, ~1.4x bigger.
    #[arg(long, requires = "depth", value_parser = [
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
        "veryslow", "placebo",
    ])]
    depth_preset: Option<String>,
    /// Keep only episodes with these outcomes (success, slip, drop, miss).
    #[arg(long, value_delimiter = ',')]
    outcome: Vec<Outcome>,
    /// Keep only episodes that have phase and outcome labels.
    #[arg(long)]
    labeled: bool,
    /// Keep only episodes of these tasks (exact task strings; repeatable).
    #[arg(long)]
    task: Vec<String>,
    /// What to do with episodes whose quality gates failed.
    #[arg(long, value_enum, default_value_t = Gates::Require)]
    gates: Gates,
    /// Where `demotape annotate --out` wrote the label sidecars (default: next to episodes).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Joint-state topic.
    #[arg(long, default_value = "/joint_states")]
    joint_topic: String,
    /// observation.state from these field paths (any message type, decoded with the file's
    /// own schema), in order, instead of the joint positions, wrenches and touch:
    /// TOPIC.FIELD, e.g. /joint_states.position, /gripper/state.width, /imu.linear_acceleration,
    /// /arm_controller/commands.data (a bare topic: every number but the header). Arrays beside
    /// a name/joint_names list are named by joint (shoulder.pos), others by path. Repeatable or
    /// comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "PATH", conflicts_with_all = ["joint_topic", "no_wrench", "no_tactile"])]
    state: Vec<TopicPath>,
    /// action from these field paths instead of --action-topic, e.g.
    /// /arm_controller/joint_trajectory.points[0].positions,/gripper/command.data
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "PATH",
        conflicts_with = "action_topic"
    )]
    action: Vec<TopicPath>,
    /// Recorded command topic (sensor_msgs/msg/JointState) used as the action when present.
    #[arg(long, default_value = "/joint_commands")]
    action_topic: String,
    /// Leave the wrist wrenches out of observation.state.
    #[arg(long)]
    no_wrench: bool,
    /// Leave the tactile summaries out of observation.state.
    #[arg(long)]
    no_tactile: bool,
    /// robot_type in info.json (default: the recorder's robot id).
    #[arg(long)]
    robot_type: Option<String>,
    /// Task string for episodes recorded without one.
    #[arg(long, default_value = "demonstration")]
    default_task: String,
    /// Start a new data file past this size (MB).
    #[arg(long, default_value_t = 100)]
    data_file_mb: u64,
    /// The lerobot to write for: 0.4 (default; lerobot 0.4.4 and 0.6 both load it) or 0.6
    /// (adds lerobot 0.6's language columns: each phase a `subtask` row, the outcome a
    /// `memory` row; lerobot 0.4.4 cannot load those).
    #[arg(long, default_value = "0.4")]
    lerobot_version: annotate::lerobot::export::LerobotVersion,
    /// The text of a phase's subtask row: PHASE=TEXT, repeatable (default: the phase name),
    /// e.g. --subtask-text grasp="close the gripper on the bottle".
    #[arg(long = "subtask-text", value_name = "PHASE=TEXT")]
    subtask_text: Vec<String>,
    /// With --video: each camera's mp4 holds episode after episode (lerobot's layout,
    /// `from_timestamp`/`to_timestamp` into it); start a new one past this size (MB).
    #[arg(long, default_value_t = 200)]
    video_file_mb: u64,
    /// Replace DIR if it exists.
    #[arg(long)]
    force: bool,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Debug)]
enum Outcome {
    Success,
    Slip,
    Drop,
    Miss,
}

#[derive(ValueEnum, Clone, Debug, PartialEq)]
enum Gates {
    /// Leave out episodes whose gates failed (episodes never annotated are kept).
    Require,
    /// Export them anyway.
    Ignore,
}

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// Turn a LeRobot dataset (codebase v3.0 or v2.1) into one MCAP episode per dataset
    /// episode.
    ///
    /// observation.state → /joint_states, action → /joint_commands, image and video
    /// features → /camera/<name>/image_raw (rgb8; videos are decoded with ffmpeg), the task →
    /// episode metadata. The episodes can then be annotated, reviewed and exported again.
    ///
    /// Example: demotape import lerobot datasets/pick --out episodes/pick
    Lerobot {
        /// The dataset directory (with meta/info.json).
        dir: PathBuf,
        /// Where to write the episodes.
        #[arg(long)]
        out: PathBuf,
        /// Import an episode whose video file is missing without that camera (the report
        /// lists the files) instead of failing.
        #[arg(long)]
        skip_missing_videos: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn export_cmd(cmd: ExportCmd) -> ExitCode {
    let ExportCmd::Lerobot(a) = cmd;
    use std::io::IsTerminal;
    let mut subtask_text = std::collections::BTreeMap::new();
    for kv in &a.subtask_text {
        match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                subtask_text.insert(k.trim().to_string(), v.to_string());
            }
            _ => {
                eprintln!("error: --subtask-text {kv:?}: expected PHASE=TEXT");
                return ExitCode::from(2);
            }
        }
    }
    let opts = ExportOptions {
        out: a.out,
        fps: a.fps,
        video: a.video,
        video_settings: annotate::lerobot::video::VideoSettings {
            codec: a.vcodec,
            crf: a.crf.unwrap_or(a.vcodec.default_crf()),
            preset: a
                .preset
                .clone()
                .unwrap_or_else(|| a.vcodec.default_preset().to_string()),
        },
        no_images: a.no_images,
        depth: a.depth,
        depth_quant: annotate::lerobot::video::DepthQuant {
            min_m: a.depth_min,
            max_m: a.depth_max,
            shift_m: a.depth_shift,
            use_log: !a.depth_linear,
        },
        depth_preset: a.depth_preset.clone(),
        cameras: a.cameras,
        joint_topic: a.joint_topic,
        state_paths: a.state,
        action_paths: a.action,
        action_topic: a.action_topic,
        wrench: !a.no_wrench,
        tactile: !a.no_tactile,
        labels_dir: a.labels,
        filter: Filter {
            outcomes: a
                .outcome
                .iter()
                .map(|o| format!("{o:?}").to_lowercase())
                .collect(),
            labeled: a.labeled,
            tasks: a.task,
            require_gates: a.gates == Gates::Require,
        },
        robot_type: a.robot_type,
        default_task: a.default_task,
        data_file_mb: a.data_file_mb.max(1),
        video_file_mb: a.video_file_mb.max(1),
        lerobot_version: a.lerobot_version,
        subtask_text,
        force: a.force,
        progress: !a.json && std::io::stderr().is_terminal(),
    };
    let r = match export(&a.paths, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    let errors = r.excluded.iter().filter(|e| e.error).count();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        println!(
            "{}: {} episode(s), {} frames at {} fps, {} data file(s), {:.1} s",
            r.out.display(),
            r.kept.len(),
            r.total_frames,
            r.fps,
            r.data_files,
            r.seconds
        );
        println!(
            "state: {} values; action: {}; cameras: {}",
            r.state_names.len(),
            r.action_source,
            if r.cameras.is_empty() {
                "none".into()
            } else {
                r.cameras.join(", ")
            }
        );
        for k in &r.kept {
            let worst = k
                .camera_offset_ms
                .values()
                .map(|v| v.0)
                .fold(0.0f64, f64::max);
            println!(
                "  kept #{:<4} {:>6} frames  {:<8} ({:<8}) max camera offset {:>5.1} ms  {}",
                k.episode_index,
                k.frames,
                k.outcome.as_deref().unwrap_or("-"),
                k.source,
                worst,
                k.path.display()
            );
        }
        for e in &r.excluded {
            println!(
                "  {} {}: {}",
                if e.error { "FAILED " } else { "left out" },
                e.path.display(),
                e.reason
            );
        }
    }
    if errors > 0 {
        eprintln!("error: {errors} episode(s) could not be read (listed above)");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn import_cmd(cmd: ImportCmd) -> ExitCode {
    let ImportCmd::Lerobot {
        dir,
        out,
        skip_missing_videos,
        json,
    } = cmd;
    use std::io::IsTerminal;
    let progress = !json && std::io::stderr().is_terminal();
    match annotate::lerobot::import::import(&dir, &out, progress, skip_missing_videos) {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                println!(
                    "{}: {} episode(s), {} frames → {}",
                    dir.display(),
                    r.episodes.len(),
                    r.frames,
                    out.display()
                );
                if !r.skipped_features.is_empty() {
                    println!(
                        "not imported (no mapping): {}",
                        r.skipped_features.join(", ")
                    );
                }
                if !r.missing_videos.is_empty() {
                    println!(
                        "{} video file(s) missing: those episodes have no such camera",
                        r.missing_videos.len()
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
