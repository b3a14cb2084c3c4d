//! `demotape`: the companion tool. See `--help`.

mod learn_cmd;
mod lerobot_cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Work with recorded demonstration episodes (MCAP files written by demotape-recorder, or any
/// ros2-profile MCAP).
///
/// Exit codes: 0 success, 1 failure (e.g. a damaged file: what was readable is still
/// reported), 2 usage error, 3 success with data loss (recover).
///
/// Logs go to stderr; set RUST_LOG for more detail. --json output is one JSON document on
/// stdout.
#[derive(Parser, Debug)]
#[command(name = "demotape", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum ReviewCmd {
    /// Episodes that need a look: confidence below --below, or failed quality gates.
    List {
        /// Directories or `.annotations.json` sidecars.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, default_value_t = 0.8)]
        below: f64,
        /// List every annotated episode, not only the flagged ones.
        #[arg(long)]
        all: bool,
        /// file (directory order) or uncertainty (unreviewed first: not annotated, failed
        /// gates, then the least confident).
        #[arg(long, value_enum, default_value = "file")]
        order: annotate::review::Order,
        #[arg(long)]
        json: bool,
    },
    /// Record a correction in the human layer (the automatic layer is never changed).
    ///
    /// Example: demotape review correct ep.annotations.json --author ana --reason "object
    /// rotated in the fingers" --outcome slip --move lift=3.52
    Correct {
        /// The episode's `.annotations.json` sidecar.
        sidecar: PathBuf,
        #[arg(long)]
        author: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// New outcome: success, slip, drop or miss.
        #[arg(long)]
        outcome: Option<String>,
        /// Move a phase start: PHASE=SECONDS (from the episode start); repeat as needed;
        /// a repeated phase is PHASE#2.
        #[arg(long = "move", value_name = "PHASE=SECONDS")]
        moves: Vec<String>,
        #[arg(long)]
        note: Option<String>,
        /// Read the correction from a JSON file instead ({author, reason, outcome, moves, note}).
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// The effective labels (human corrections over the automatic layer) and their history.
    Show {
        sidecar: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Review in the browser: the queue of DIR, each episode's cameras and signals on one
    /// time axis, boundaries to drag, the outcome on keys 1-4, accept with `a`.
    ///
    /// Writes the same history `review correct` writes (`<stem>.review.json`, under a lock,
    /// so several reviewers of one directory never lose a correction: a stale page is told
    /// what changed). Listens on 127.0.0.1; with --listen on another address, every request
    /// needs the token printed at start. Example:
    ///   demotape annotate episodes/ && demotape review serve episodes/ --author ana --open
    Serve {
        /// The directory of episodes and their `.annotations.json` sidecars.
        dir: PathBuf,
        /// TCP port; 0 picks a free one (the address is printed).
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// Address to listen on. Anything but loopback requires the printed token.
        #[arg(long, default_value = "127.0.0.1")]
        listen: std::net::IpAddr,
        /// Record corrections under this name (otherwise the page asks once).
        #[arg(long)]
        author: Option<String>,
        /// Open the page in the default browser (xdg-open).
        #[arg(long)]
        open: bool,
        /// The annotate config the signals are read with (topics, robot); default: built in.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Flag episodes below this confidence in the queue.
        #[arg(long, default_value_t = 0.8)]
        below: f64,
        /// Queue order: file, or uncertainty (what needs a person first).
        #[arg(long, value_enum, default_value = "file")]
        order: annotate::review::Order,
    },
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Export episodes to training formats (LeRobot v3.0).
    #[command(subcommand)]
    Export(lerobot_cmd::ExportCmd),
    /// Import datasets from training formats (LeRobot v3.0) as episodes.
    #[command(subcommand)]
    Import(lerobot_cmd::ImportCmd),
    /// Show an episode in Rerun: cameras, depth, joints, the arm, forces, touch, events,
    /// sync quality and the phase/outcome labels, on the synchronized capture_time timeline,
    /// with a default layout. Or, with --live, what a recorder is capturing right now.
    ///
    /// Streams the file chunk by chunk (bounded memory). Labels from `demotape annotate`
    /// (and `demotape review` corrections) are shown when their sidecar is found.
    ///
    /// --live subscribes to the recorder's decimated live copy over Zenoh
    /// (<prefix>/<robot>/live/**, see [live] in the recorder's config) and its status, on a
    /// receive_time timeline; peer mode finds recorders on the LAN by multicast, or give
    /// --zenoh ENDPOINT. Runs until Ctrl-C or --for SECS.
    ///
    /// Examples:
    ///   demotape view episode.mcap --save episode.rrd   (then: rerun episode.rrd)
    ///   demotape view episode.mcap --spawn               (needs `rerun` on the PATH)
    ///   demotape view episode.mcap --connect rerun+http://127.0.0.1:9876/proxy
    ///   demotape view --live --robot arm-1 --spawn
    ///   demotape view --live --recorder-config robot.toml --zenoh tcp/10.0.0.5:7448 --spawn
    #[command(verbatim_doc_comment)]
    View {
        /// The episode (MCAP, or a rosbag2 bag directory holding one); a split episode is
        /// shown from this part on, through its later parts. Not with --live.
        #[arg(required_unless_present = "live", conflicts_with = "live")]
        file: Option<PathBuf>,
        /// Write an .rrd file.
        #[arg(long, group = "sink")]
        save: Option<PathBuf>,
        /// Start a Rerun viewer (the `rerun` program, e.g. from `pip install rerun-sdk==0.36.3`).
        #[arg(long, group = "sink")]
        spawn: bool,
        /// Send to a running viewer at this gRPC address.
        #[arg(long, group = "sink")]
        connect: Option<String>,
        /// Where `demotape annotate --out` wrote the label sidecars.
        #[arg(long, conflicts_with = "live")]
        labels: Option<PathBuf>,
        /// Print the report (rows per entity) as JSON.
        #[arg(long)]
        json: bool,
        /// Watch a running recorder's live copy instead of a file.
        #[arg(long)]
        live: bool,
        /// Robot id of the recorder to watch (its recorder.robot_id).
        #[arg(long, requires = "live")]
        robot: Option<String>,
        /// Take robot id, key prefix and [zenoh] settings from the recorder's TOML config.
        #[arg(long, requires = "live")]
        recorder_config: Option<PathBuf>,
        /// Zenoh endpoint to connect to, e.g. tcp/192.168.1.20:7448 (repeatable).
        #[arg(long = "zenoh", value_name = "ENDPOINT", requires = "live")]
        zenoh: Vec<String>,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long = "for", value_name = "SECS", requires = "live")]
        for_s: Option<f64>,
        /// The robot as `demotape annotate --config` describes it ([robot] URDF or [arm] DH,
        /// and [signals]' gripper joint): its arm is drawn. Default: the simulator's.
        #[arg(long, conflicts_with = "urdf")]
        config: Option<PathBuf>,
        /// Draw this URDF's arm (the chain from --base-link to --tool-link) from the joint
        /// states, e.g. --urdf ur5e.urdf --tool-link tool0.
        #[arg(long)]
        urdf: Option<PathBuf>,
        /// With --urdf: the chain's first link (default: the root).
        #[arg(long, requires = "urdf")]
        base_link: Option<String>,
        /// With --urdf: the chain's tool link (default: the leaf with the most joints).
        #[arg(long, requires = "urdf")]
        tool_link: Option<String>,
        /// With --urdf: the unit of the recorded joint positions.
        #[arg(long, value_enum, default_value_t = Units::Rad, requires = "urdf")]
        joint_units: Units,
        /// With --urdf: the gripper finger joint (none by default).
        #[arg(long, requires = "urdf", default_value = "")]
        gripper_joint: String,
    },
    /// The human review queue and corrections (a layer that overrides the automatic one).
    #[command(subcommand)]
    Review(ReviewCmd),
    /// Automatic task phases and grasp outcomes, with quality gates, for many episodes.
    ///
    /// For each episode (files, or directories searched for .mcap) writes
    /// <stem>.annotations.json (phases, outcome, confidence, evidence, gates, provenance) and
    /// <stem>.annotations.mcap (the `auto` layer on /demotape/annotations/auto, to open next to
    /// the episode in Foxglove or Rerun). Episodes are never modified. A bad file is reported
    /// and the rest of the batch still processed; exit 1 if any failed.
    ///
    /// When the gripper closes: idle, reach, grasp, lift, transport, place, release, retreat,
    /// and an outcome per attempt (a regrasp is a second attempt). Otherwise (no gripper, a
    /// part held from the start, a wipe, a wrench and no joint states): `segment` spans at
    /// the changes in motion, contact and gripper, and outcome `none`.
    ///
    /// Example: demotape annotate episodes/ --out labels/
    ///
    /// Another robot: demotape annotate ur5/ --config ur5.toml (its `[robot] urdf`, joint
    /// units and gripper joint; `demotape annotate --print-config` shows every key)
    Annotate {
        /// Episode files or directories.
        #[arg(required_unless_present = "print_config")]
        paths: Vec<PathBuf>,
        /// Write the outputs here instead of next to each episode.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Print one JSON document (all results) instead of a table.
        #[arg(long)]
        json: bool,
        /// TOML configuration: topics and joints, the arm's kinematics (modified DH), gate
        /// thresholds. Defaults: the simulated robot (see --print-config).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the default configuration as TOML and exit.
        #[arg(long, exclusive = true)]
        print_config: bool,
        /// A model from `demotape train`: its phases and outcome replace the rules' on every
        /// episode of its task whose signals it knows (others keep the rules', with a
        /// warning); the sidecar's `labeler` says which, and why. A model of another robot or
        /// signal configuration is refused (exit 2).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Learn a task from reviewed episodes: a model file `annotate --model` uses.
    ///
    /// Learns from every episode given that has a reference layer (a human review with
    /// corrections, `<stem>.reference.json` or the simulator's `<stem>.truth.json`):
    ///   - boundaries: each episode becomes a template; a new episode is aligned to every
    ///     template by dynamic time warping over end-effector speed, gripper opening, wrist
    ///     load and touch, and the nearest templates' boundaries are carried over (median);
    ///   - outcome: a class-balanced, L2-regularised logistic regression (linfa) over how the
    ///     gripper closed and what it held and lost, Platt-calibrated on held-out folds.
    ///
    /// Works from 3–5 reviewed episodes of one task on one robot; more help. The file records
    /// the task, the robot/signal configuration's hash (a model is refused under another),
    /// the episodes it learned from and its own cross-validated scores. Deterministic.
    ///
    /// Examples:
    ///   demotape review correct ep1.mcap --phase grasp@3.2 …   (a few episodes)
    ///   demotape train episodes/ --out wipe.model.json --config ur5.toml
    ///   demotape annotate new/ --model wipe.model.json --config ur5.toml
    #[command(verbatim_doc_comment)]
    Train(learn_cmd::TrainArgs),
    /// Rebuild a valid, indexed MCAP from a truncated or damaged one, and report what was lost.
    ///
    /// Copies the header, schemas, channels, metadata and every message of every readable
    /// chunk bit-exact into OUT (which must not exist), adds a summary section and a
    /// `demotape.recovered` metadata record. Exit 0 if nothing was lost, 3 if something was.
    ///
    /// Example: demotape recover crashed.mcap crashed.recovered.mcap
    Recover {
        /// The damaged file.
        input: PathBuf,
        /// Where to write the recovered file.
        output: PathBuf,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Score the automatic labels against a reference: boundary error, misses and false alarms,
    /// outcome accuracy, macro-F1, calibration — per directory and overall.
    ///
    /// The reference of each episode is its human review (`demotape review correct`), else a
    /// `<stem>.reference.json` beside it ({"outcome", "phases": [{"phase", "start_s",
    /// "end_s"}]}), else the simulator's `<stem>.truth.json` (--reference forces one).
    /// A reference boundary (phase a → b) is hit by the nearest predicted boundary of the same
    /// pair within --tolerance; otherwise it is a miss, and unmatched predictions are false
    /// alarms. ECE: expected calibration error of the outcome confidence over 10 bins.
    ///
    /// Examples:
    ///   demotape eval episodes/ --json
    ///   demotape eval episodes/ --labels labels/ --reference human --tolerance 0.5
    #[command(verbatim_doc_comment)]
    Eval {
        /// Episode files or directories (searched recursively for .mcap).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Where `demotape annotate --out` wrote the sidecars (default: next to episodes).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Which reference layer.
        #[arg(long, value_enum, default_value_t = RefKind::Auto)]
        reference: RefKind,
        /// Seconds within which a predicted boundary counts as a hit.
        #[arg(long, default_value_t = 1.0)]
        tolerance: f64,
        /// Print the whole report (every episode) as JSON.
        #[arg(long)]
        json: bool,
        /// K-fold cross-validation of `demotape train` instead of scoring the sidecars: per
        /// directory (one task), train on K − 1 folds, label the held-out one, score it.
        #[arg(long, value_name = "K")]
        cv: Option<usize>,
        /// A learning curve: for each N, train on N episodes drawn at random (--repeats
        /// draws), score the rest; e.g. `--train-sizes 3,5,10,20`.
        #[arg(long, value_delimiter = ',', value_name = "N,…")]
        train_sizes: Vec<usize>,
        /// Draws per learning-curve point.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Which N episodes of a draw are the reviewed ones: random, or coverage (a random
        /// first one, then each next the episode least like those already chosen, as
        /// `review list --order coverage` orders them).
        #[arg(long, value_enum, default_value = "random")]
        select: annotate::learn::cv::Selection,
        #[command(flatten)]
        learn: learn_cmd::LearnArgs,
    },
    /// What is in an episode: channels, types, counts, rates, drops, duration, metadata, sync.
    ///
    /// Reads every record and CRC-checks every chunk, so a truncated or corrupted file is
    /// reported precisely (byte offset of each problem) together with everything that was
    /// still readable. Exits 1 if the file is damaged.
    ///
    /// Example: demotape inspect episodes/sim-robot/sim-robot_20261122T101500Z_0000.mcap
    Inspect {
        /// The MCAP file (or a rosbag2 bag directory holding one).
        file: PathBuf,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
        /// Also re-estimate every device clock offline from /demotape/clock/* and report how
        /// far the recorded (online) stamps are from that re-estimate, per device.
        #[arg(long)]
        resync: bool,
        /// Print decoded messages of TOPIC (any ROS 2 type, decoded with the schema the file
        /// carries), e.g. `--sample /tf` or `--sample /gripper/state`; repeatable.
        #[arg(long, value_name = "TOPIC")]
        sample: Vec<String>,
        /// How many messages `--sample` prints per topic (spread over the episode).
        #[arg(long, default_value_t = 1, value_name = "N")]
        samples: usize,
    },
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // colour codes only on a terminal, never in a log file
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Export(c) => lerobot_cmd::export_cmd(c),
        Command::Eval {
            paths,
            labels,
            reference,
            tolerance,
            json,
            cv,
            train_sizes,
            repeats,
            select,
            learn,
        } => {
            if cv.is_some() || !train_sizes.is_empty() {
                if tolerance.is_nan() || tolerance <= 0.0 {
                    eprintln!("error: --tolerance must be positive");
                    return ExitCode::from(2);
                }
                if cv.is_some_and(|k| k < 2) {
                    eprintln!("error: --cv needs at least 2 folds");
                    return ExitCode::from(2);
                }
                learn_cmd::cv_cmd(learn_cmd::CvRequest {
                    paths: &paths,
                    labels: labels.as_deref(),
                    kind: reference.into(),
                    tolerance,
                    folds: cv,
                    sizes: &train_sizes,
                    repeats,
                    select,
                    json,
                    learn: &learn,
                })
            } else {
                eval_cmd(&paths, labels.as_deref(), reference, tolerance, json)
            }
        }
        Command::Train(t) => learn_cmd::train_cmd(t),
        Command::Import(c) => lerobot_cmd::import_cmd(c),
        Command::View {
            file,
            save,
            spawn,
            connect,
            labels,
            json,
            live,
            robot,
            recorder_config,
            zenoh,
            for_s,
            config,
            urdf,
            base_link,
            tool_link,
            joint_units,
            gripper_joint,
        } => {
            use std::io::IsTerminal;
            let arm = match view_robot(
                config,
                urdf,
                base_link,
                tool_link,
                joint_units,
                gripper_joint,
            ) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let sink = match (&save, spawn, connect) {
                (Some(p), _, _) => annotate::view::Sink::Save(p),
                (None, true, _) => annotate::view::Sink::Spawn,
                (None, false, Some(a)) => annotate::view::Sink::Connect(a),
                (None, false, None) => {
                    eprintln!("error: say where to: --save OUT.rrd, --spawn or --connect ADDR");
                    return ExitCode::from(2);
                }
            };
            let progress = !json && std::io::stderr().is_terminal();
            let result = if live {
                let opts = match live_options(robot, recorder_config, zenoh, for_s) {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        return ExitCode::from(2);
                    }
                };
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                on_ctrl_c(stop.clone());
                annotate::view::view_live(&opts, sink, &stop, &arm, progress)
                    .map(|r| (format!("live {}", opts.robot), r))
            } else {
                let file = file.expect("clap requires FILE without --live");
                annotate::view::view(&file, sink, labels.as_deref(), &arm, progress)
                    .map(|r| (file.display().to_string(), r))
            };
            match result {
                Ok((what, r)) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    } else {
                        println!(
                            "{what}{}: {} messages ({:.1} s of data) → {} entities, {} views in {:.1} s ({:.1}x real time){}{}",
                            if r.parts.len() > 1 {
                                format!(" and its {} later parts", r.parts.len() - 1)
                            } else {
                                String::new()
                            },
                            r.messages,
                            r.duration_s,
                            r.rows.len(),
                            r.layout.len(),
                            r.seconds,
                            r.duration_s / r.seconds.max(1e-9),
                            if r.skipped > 0 {
                                format!(", {} undecodable skipped", r.skipped)
                            } else {
                                String::new()
                            },
                            r.missing_part.as_ref().map_or(String::new(), |p| format!(
                                "; its next part {} is missing",
                                p.display()
                            ))
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Review(r) => match review_cmd(r) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Annotate {
            paths,
            out,
            jobs,
            json,
            config,
            print_config,
            model,
        } => {
            if print_config {
                print!("{}", annotate::label::DEFAULT_CONFIG_TOML);
                return ExitCode::SUCCESS;
            }
            let cfg = match config
                .as_deref()
                .map(annotate::label::AnnotateConfig::load)
                .transpose()
            {
                Ok(c) => c.unwrap_or_default(),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let model = match model
                .as_deref()
                .map(annotate::learn::Model::load)
                .transpose()
                .and_then(|m| {
                    if let Some(m) = &m {
                        annotate::label::check_model(m, &cfg)?;
                    }
                    Ok(m)
                }) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            annotate_cmd(&paths, out.as_deref(), jobs, json, &cfg, model.as_ref())
        }
        Command::Recover {
            input,
            output,
            json,
        } => match annotate::recover::recover(&input, &output) {
            Ok(r) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                } else {
                    print!("{}", r.render());
                }
                if r.lost_anything() {
                    ExitCode::from(3)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Inspect {
            file,
            json,
            resync,
            sample,
            samples,
        } => {
            let file = match annotate::read::bag_file(&file) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            if !sample.is_empty() {
                let want: std::collections::BTreeSet<&str> =
                    sample.iter().map(String::as_str).collect();
                let r = annotate::read::read_selected(&file, |topic, _| want.contains(topic))
                    .and_then(|sel| {
                        let mut out = Vec::new();
                        for t in &sample {
                            out.push((t, annotate::decode::sample(&sel, t, samples)?));
                        }
                        Ok(out)
                    });
                return match r {
                    Ok(out) => {
                        for (topic, msgs) in out {
                            if msgs.is_empty() {
                                println!("# {topic}: no messages");
                            }
                            for (t, v) in msgs {
                                if json {
                                    println!(
                                        "{}",
                                        serde_json::json!({"topic": topic, "log_time": t, "message": v.to_json()})
                                    );
                                } else {
                                    println!("# {topic} @ {t} ns\n{}", v.render(8));
                                }
                            }
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {}: {e:#}", file.display());
                        ExitCode::from(2)
                    }
                };
            }
            match annotate::inspect::Inspection::run(&file) {
                Ok(mut ins) => {
                    if resync && ins.intact {
                        match annotate::resync::audit(&file, ins.metadata.get("demotape.sync")) {
                            Ok(a) => ins.resync = Some(a),
                            Err(e) => eprintln!("error: {e:#}"),
                        }
                    }
                    if json {
                        match serde_json::to_string_pretty(&ins) {
                            Ok(s) => println!("{s}"),
                            Err(e) => {
                                eprintln!("error: {e}");
                                return ExitCode::from(1);
                            }
                        }
                    } else {
                        print!("{}", ins.render());
                    }
                    if ins.intact {
                        ExitCode::SUCCESS
                    } else {
                        for p in &ins.problems {
                            eprintln!(
                                "error: {}: byte {}: {}",
                                file.display(),
                                p.offset,
                                p.message
                            );
                        }
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn annotate_cmd(
    paths: &[PathBuf],
    out: Option<&std::path::Path>,
    jobs: Option<usize>,
    json: bool,
    cfg: &annotate::label::AnnotateConfig,
    model: Option<&annotate::learn::Model>,
) -> ExitCode {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let arm = match cfg.robot_arm() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let files = annotate::label::collect(paths);
    if files.is_empty() {
        eprintln!(
            "error: no .mcap episodes found in {} (directories are searched recursively; \
             companion *.annotations*.mcap files are not episodes)",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(2);
    }
    // Two episodes must never share a sidecar: with --out, episodes of the same file name
    // from two folders would overwrite each other's labels (whichever finished last won).
    let mut by_sidecar: std::collections::BTreeMap<PathBuf, &PathBuf> = Default::default();
    for f in &files {
        let (side, _) = annotate::label::outputs(f, out);
        if let Some(other) = by_sidecar.insert(side.clone(), f) {
            eprintln!(
                "error: {} and {} would both write {}: annotate them into different --out \
                 directories (or without --out, beside each episode)",
                other.display(),
                f.display(),
                side.display()
            );
            return ExitCode::from(2);
        }
    }
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 64);
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} episodes {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<annotate::label::EpisodeAnnotation, String>)>> =
        Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..jobs.min(files.len()) {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    let r = annotate::label::annotate_or_record(f, out, cfg, &arm, model);
                    if let Ok(mut v) = results.lock() {
                        v.push((i, r));
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|r| r.0);
    let failed = results.iter().filter(|r| r.1.is_err()).count();
    if json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(i, r)| match r {
                Ok(a) => serde_json::to_value(a).unwrap_or_default(),
                Err(e) => serde_json::json!({"source": files[*i], "error": e}),
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        println!(
            "{:<64} {:>8} {:>6} {:>7} gates",
            "episode", "outcome", "conf", "phases"
        );
        for (i, r) in &results {
            match r {
                Ok(a) => {
                    let failed_gates: Vec<&str> =
                        a.gates.iter().filter(|g| !g.pass).map(|g| g.name).collect();
                    println!(
                        "{:<64} {:>8} {:>6.2} {:>7} {}",
                        files[*i].display(),
                        a.outcome,
                        a.confidence,
                        a.phases.len(),
                        if failed_gates.is_empty() {
                            "pass".to_string()
                        } else {
                            format!("FAIL: {}", failed_gates.join(", "))
                        }
                    );
                }
                Err(_) => println!("{:<64} {:>8}", files[*i].display(), "ERROR"),
            }
        }
    }
    for (_, r) in &results {
        if let Err(e) = r {
            eprintln!("error: {e}");
        }
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum RefKind {
    /// human review, else reference.json, else truth.json
    Auto,
    Human,
    /// <stem>.reference.json
    File,
    /// the simulator's <stem>.truth.json
    Truth,
}

impl From<RefKind> for annotate::eval::Reference {
    fn from(r: RefKind) -> Self {
        use annotate::eval::Reference;
        match r {
            RefKind::Auto => Reference::Auto,
            RefKind::Human => Reference::Human,
            RefKind::File => Reference::File,
            RefKind::Truth => Reference::Truth,
        }
    }
}

fn eval_cmd(
    paths: &[PathBuf],
    labels: Option<&std::path::Path>,
    reference: RefKind,
    tolerance: f64,
    json: bool,
) -> ExitCode {
    let kind = reference.into();
    if tolerance.is_nan() || tolerance <= 0.0 {
        eprintln!("error: --tolerance must be positive");
        return ExitCode::from(2);
    }
    let r = match annotate::eval::eval(paths, labels, kind, tolerance) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        let f = |x: Option<f64>, scale: f64, prec: usize| {
            x.map_or("-".to_string(), |v| format!("{:.*}", prec, v * scale))
        };
        println!(
            "{:<40} {:>4} {:>6} {:>8} {:>8} {:>6} {:>6} {:>7} {:>7} {:>6}",
            "group",
            "eps",
            "bounds",
            "med ms",
            "p95 ms",
            "miss",
            "false",
            "acc %",
            "macroF1",
            "ECE"
        );
        let mut rows: Vec<(&str, &annotate::eval::Summary)> =
            r.groups.iter().map(|(g, s)| (g.as_str(), s)).collect();
        rows.push(("overall", &r.overall));
        for (g, s) in rows {
            println!(
                "{:<40} {:>4} {:>6} {:>8} {:>8} {:>6} {:>6} {:>7} {:>7} {:>6}",
                g,
                s.episodes,
                s.boundaries,
                f(s.boundary_median_ms, 1.0, 1),
                f(s.boundary_p95_ms, 1.0, 1),
                s.misses,
                s.false_alarms,
                f(s.accuracy, 100.0, 1),
                f(s.macro_f1, 1.0, 3),
                f(s.ece, 1.0, 3)
            );
        }
        println!("tolerance {} s", r.tolerance_s);
        for (p, why) in &r.skipped {
            eprintln!("skipped {}: {why}", p.display());
        }
    }
    if r.episodes.is_empty() {
        eprintln!(
            "error: no episode could be scored ({} skipped)",
            r.skipped.len()
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Units {
    /// rad and m (ROS)
    Rad,
    /// degrees and mm (LeRobot's Feetech arms)
    Deg,
}

/// The robot `view` draws: from an annotate config, a URDF, or the simulator's by default.
fn view_robot(
    config: Option<PathBuf>,
    urdf: Option<PathBuf>,
    base_link: Option<String>,
    tool_link: Option<String>,
    units: Units,
    gripper_joint: String,
) -> anyhow::Result<annotate::view::ViewRobot> {
    let mut c = match &config {
        Some(p) => annotate::label::AnnotateConfig::load(p)?,
        None => annotate::label::AnnotateConfig::default(),
    };
    if let Some(u) = urdf {
        c.robot = hal::robot::RobotConfig {
            urdf: Some(u),
            base_link,
            tool_link,
            joint_units: match units {
                Units::Rad => hal::robot::JointUnits::Rad,
                Units::Deg => hal::robot::JointUnits::Deg,
            },
        };
        c.signals.gripper_joint = gripper_joint;
        c.dir = None;
    }
    annotate::view::ViewRobot::from_config(&c)
}

fn review_cmd(r: ReviewCmd) -> anyhow::Result<ExitCode> {
    use annotate::review;
    match r {
        ReviewCmd::Serve {
            dir,
            port,
            listen,
            author,
            open,
            config,
            below,
            order,
        } => {
            let config = match &config {
                Some(p) => annotate::label::AnnotateConfig::load(p)?,
                None => annotate::label::AnnotateConfig::default(),
            };
            annotate::serve::serve(annotate::serve::ServeOptions {
                dir,
                listen,
                port,
                author,
                config,
                below,
                open,
                order,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ReviewCmd::List {
            paths,
            below,
            all,
            order,
            json,
        } => {
            let mut q = review::queue(&paths, below, all);
            review::sort_queue(&mut q, order);
            if json {
                println!("{}", serde_json::to_string_pretty(&q)?);
            } else {
                println!(
                    "{:<70} {:>8} {:>5} {:>8}  why",
                    "sidecar", "outcome", "conf", "reviewed"
                );
                for i in &q {
                    println!(
                        "{:<70} {:>8} {:>5.2} {:>8}  {}",
                        i.sidecar.display(),
                        i.outcome,
                        i.confidence,
                        i.reviewed,
                        i.why
                    );
                }
                println!("{} episode(s)", q.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        ReviewCmd::Correct {
            sidecar,
            author,
            reason,
            outcome,
            moves,
            note,
            from_file,
        } => {
            let c = match from_file {
                Some(f) => {
                    let text = std::fs::read_to_string(&f)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                    serde_json::from_str::<review::Correction>(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
                }
                None => {
                    let mut m = std::collections::BTreeMap::new();
                    for mv in &moves {
                        let (p, t) = mv.split_once('=').ok_or_else(|| {
                            anyhow::anyhow!("--move {mv:?}: expected PHASE=SECONDS")
                        })?;
                        let t: f64 = t.parse().map_err(|_| {
                            anyhow::anyhow!("--move {mv:?}: {t:?} is not a number of seconds")
                        })?;
                        m.insert(p.to_string(), t);
                    }
                    review::Correction {
                        author: author.unwrap_or_default(),
                        reason: reason.unwrap_or_default(),
                        outcome,
                        moves: m,
                        note,
                        ..Default::default()
                    }
                }
            };
            let eff = review::correct(&sidecar, c)?;
            println!(
                "outcome {} ({}); phases: {}",
                eff.outcome,
                eff.source,
                eff.phases
                    .iter()
                    .map(|p| format!("{} {:.3}", p.0, p.1))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        ReviewCmd::Show { sidecar, json } => {
            let auto = review::load_auto(&sidecar)?;
            let rv = review::load_review(&sidecar)?;
            let eff = review::effective(&auto, &rv)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"effective": eff, "history": rv.history})
                    )?
                );
            } else {
                println!("outcome: {} (from the {} layer)", eff.outcome, eff.source);
                for (p, a, b) in &eff.phases {
                    println!("  {p:<10} {a:>8.3} s .. {b:>8.3} s");
                }
                for n in &eff.notes {
                    println!("note: {n}");
                }
                println!("{} correction(s) in the history", rv.history.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `view --live` settings: defaults, then the recorder's TOML (`[recorder].robot_id`,
/// `[control].key_prefix`, `[zenoh]`), then the flags.
fn live_options(
    robot: Option<String>,
    recorder_config: Option<PathBuf>,
    zenoh: Vec<String>,
    for_s: Option<f64>,
) -> anyhow::Result<annotate::view::LiveOptions> {
    use anyhow::Context;
    let mut o = annotate::view::LiveOptions {
        session: hal::zenoh::SessionConfig::default(),
        prefix: "demotape".into(),
        robot: "sim-robot".into(),
        duration: None,
    };
    if let Some(p) = &recorder_config {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let v: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        if let Some(r) = v
            .get("recorder")
            .and_then(|r| r.get("robot_id"))
            .and_then(|r| r.as_str())
        {
            o.robot = r.to_string();
        }
        if let Some(k) = v
            .get("control")
            .and_then(|c| c.get("key_prefix"))
            .and_then(|k| k.as_str())
        {
            o.prefix = k.to_string();
        }
        if let Some(z) = v.get("zenoh") {
            o.session = z
                .clone()
                .try_into()
                .with_context(|| format!("{}: [zenoh]", p.display()))?;
            // the recorder listens where we connect: a viewer does not take its listen list
            o.session.listen.clear();
        }
    }
    if let Some(r) = robot {
        o.robot = r;
    }
    if !zenoh.is_empty() {
        o.session.connect = zenoh;
    }
    if let Some(s) = for_s {
        anyhow::ensure!(
            s > 0.0 && s.is_finite(),
            "--for must be a positive number of seconds"
        );
        o.duration = Some(std::time::Duration::from_secs_f64(s));
    }
    Ok(o)
}

/// Ctrl-C / SIGTERM set `stop` (the viewer then flushes and exits 0).
fn on_ctrl_c(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    if let Err(e) =
        ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::Relaxed))
    {
        tracing::warn!("no Ctrl-C handler ({e}): a signal will end the process at once");
    }
}
