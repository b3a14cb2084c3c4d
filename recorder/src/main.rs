//! `demotape-recorder`: the edge process. See `--help`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use recorder::config::{Config, DEFAULT_CONFIG};
use recorder::sim::SimJob;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Record robot demonstrations into MCAP episodes.
///
/// Every sensor sample is written with two times: MCAP log_time and header.stamp are the
/// capture time mapped onto the host reference clock (CLOCK_REALTIME), publish_time is the
/// host receive time. Raw clock observations go to /demotape/clock/<device>, drops and
/// other events to /demotape/events, so nothing is lost silently.
///
/// Exit codes: 0 success, 1 failure, 2 usage error, 3 recorded but samples were dropped
/// (the counts are in each episode and in the summary printed at the end).
///
/// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more detail.
#[derive(Parser, Debug)]
#[command(name = "demotape-recorder", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Record simulated pick-and-place episodes (the embedded default: no hardware, no router).
    ///
    /// Writes <out>/<robot>/<robot>_<UTC start>_<index>.mcap per episode plus the
    /// simulator's ground truth next to it as <episode>.truth.json. Runs in real time.
    ///
    /// Example: demotape-recorder sim --out episodes --episodes 3 --duration 10
    Sim {
        /// Output directory (overrides recorder.out_dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Number of episodes to record.
        #[arg(long, default_value_t = 1)]
        episodes: u64,
        /// Episode length in seconds (the task is compressed to fit short episodes).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seed of the simulator (overrides sim.seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Index of the first episode; episode parameters derive from (seed, index).
        #[arg(long, default_value_t = 0)]
        first_index: u64,
        /// Sensor load preset: humanoid-ref (640x480 cameras, ~122 MB/s), small (160x120) or
        /// automotive (six 1250x1000 cameras at 24 Hz, ~540 MB/s, after rosbag2's benchmark).
        #[arg(long, default_value = "humanoid-ref")]
        load: String,
        /// TOML configuration file (see `demotape-recorder config`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print one JSON summary per episode on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Route the wrist wrench and tactile streams through simulated serial boards on
        /// pseudo-terminals (same as sim.boards = true).
        #[arg(long)]
        boards: bool,
        /// Inject a fault into a simulated board in every episode (with --boards):
        /// DEVICE:ACTION@SECONDS, ACTION = unplug:SECS | reboot | stall:SECS.
        /// Example: --board-fault ft_right:unplug:1@3 --board-fault tactile_left:reboot@5
        #[arg(long = "board-fault", value_name = "FAULT")]
        board_faults: Vec<recorder::sim::BoardFault>,
        /// Also publish a decimated live copy over Zenoh (peer mode per [zenoh]; tuned by
        /// [live]) for `demotape view --live --spawn` in another terminal, and the recorder
        /// status on <prefix>/<robot>/status every control.status_period_ms, as `run` does.
        /// Receive-time stamped; the episode files are unchanged.
        #[arg(long)]
        live: bool,
    },
    /// The service: record the sources of the config (ROS 2 topics over Zenoh, serial
    /// boards), controlled by operators over Zenoh.
    ///
    /// Idle until a `start` arrives on <prefix>/<robot>/ctl/start (from `demotape-recorder
    /// ctl start` or any Zenoh peer); keeps a pre-roll of the last seconds meanwhile.
    /// Publishes status every second on <prefix>/<robot>/status. Ctrl-C / SIGTERM finishes
    /// the current episode cleanly.
    ///
    /// Example: demotape-recorder run --config robot.toml
    Run {
        /// TOML configuration file (see `demotape-recorder config`).
        #[arg(long)]
        config: PathBuf,
        /// Output directory (overrides recorder.out_dir).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The operator's client: start, stop, discard, mark, status.
    ///
    /// Examples:
    ///   demotape-recorder ctl start --task "pick the red cube" --operator ana --tag bimanual
    ///   demotape-recorder ctl mark --outcome slip --note "cube rotated in the grasp"
    ///   demotape-recorder ctl stop --outcome success
    ///   demotape-recorder ctl status --watch
    ///
    /// Exit codes: 0 done, 1 refused by the recorder or no recorder answered, 2 usage.
    #[command(verbatim_doc_comment)]
    Ctl {
        #[command(flatten)]
        conn: CtlConn,
        #[command(subcommand)]
        verb: CtlVerb,
    },
    /// Print the default configuration, every key documented.
    Config,
}

#[derive(clap::Args, Debug)]
struct CtlConn {
    /// Robot id of the recorder to talk to (its recorder.robot_id).
    #[arg(
        long,
        global = true,
        default_value = "sim-robot",
        env = "DEMOTAPE_ROBOT"
    )]
    robot: String,
    /// Take robot id, key prefix and [zenoh] settings from the recorder's TOML config.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Zenoh endpoint to connect to, e.g. tcp/192.168.1.20:7447 (repeatable).
    #[arg(long, global = true)]
    connect: Vec<String>,
    /// A Zenoh JSON5 config for this client (credentials, TLS).
    #[arg(long, global = true)]
    zenoh_config: Option<PathBuf>,
    /// Seconds to wait for the recorder's answer.
    #[arg(long, global = true, default_value_t = 5.0)]
    timeout: f64,
    /// Print the recorder's answer as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum CtlVerb {
    /// Start an episode (with the pre-roll before it).
    Start {
        /// What the operator is demonstrating.
        #[arg(long)]
        task: Option<String>,
        #[arg(long)]
        operator: Option<String>,
        /// Free tags (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Stop and keep the episode.
    Stop {
        /// Outcome label, e.g. success, slip, drop, miss.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Stop and throw the episode away (moved to <out>/<robot>/discarded/).
    Discard {
        #[arg(long)]
        note: Option<String>,
    },
    /// Label the running episode (an event at this moment plus the episode's outcome).
    Mark {
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Show the recorder's state once, or continuously with --watch.
    Status {
        #[arg(long)]
        watch: bool,
    },
}

fn main() -> ExitCode {
    use tracing_subscriber::prelude::*;
    let cli = Cli::parse();
    // the operator's client says only what went wrong (no Zenoh INFO chatter); the recorder
    // itself logs at info
    let default = if matches!(cli.command, Command::Ctl { .. }) {
        // ctl reports failures to reach a recorder itself
        "error,demotape_recorder=warn,recorder=warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // colour codes only on a terminal, never in a log file or journal
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter),
        )
        .with(recorder::audit::AclAudit::layer())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Config => {
            print!("{DEFAULT_CONFIG}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config, out } => {
            let mut cfg = Config::load(&config)?;
            if let Some(o) = out {
                cfg.recorder.out_dir = o;
            }
            let stop = CancellationToken::new();
            ctrlc_handler(stop.clone());
            let r = recorder::service::run(cfg, stop.clone())?;
            eprintln!("recorded {} episode(s)", r.episodes);
            // the exit codes README promises, as `sim` gives them
            if r.drops > 0 {
                eprintln!(
                    "warning: {} samples were dropped; per-channel counts are in each episode",
                    r.drops
                );
                return Ok(ExitCode::from(3));
            }
            if stop.is_cancelled() {
                return Ok(ExitCode::from(130));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ctl { conn, verb } => ctl(conn, verb),
        Command::Sim {
            out,
            episodes,
            duration,
            seed,
            first_index,
            load,
            config,
            json,
            boards,
            board_faults,
            live,
        } => {
            let mut cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            if config.is_none() || load != "humanoid-ref" {
                let Some(preset) = hal::sim::SimConfig::preset(&load) else {
                    eprintln!(
                        "error: unknown --load {load:?} (expected humanoid-ref, small or automotive)"
                    );
                    return Ok(ExitCode::from(2));
                };
                let seed0 = cfg.sim.seed;
                cfg.sim = hal::sim::SimConfig {
                    seed: seed0,
                    failures: cfg.sim.failures.clone(),
                    boards: cfg.sim.boards.clone(),
                    ptp: cfg.sim.ptp.clone(),
                    ..preset
                };
            }
            if let Some(o) = out {
                cfg.recorder.out_dir = o;
            }
            if let Some(s) = seed {
                cfg.sim.seed = s;
            }
            if boards {
                cfg.sim.boards.enable_sensors();
            }
            if !board_faults.is_empty() && !cfg.sim.boards.any() {
                eprintln!("error: --board-fault needs --boards (or sim.boards = true)");
                return Ok(ExitCode::from(2));
            }
            if !(duration > 0.0 && duration <= 24.0 * 3600.0) {
                eprintln!("error: --duration must be in (0, 86400] seconds");
                return Ok(ExitCode::from(2));
            }
            cfg.validate()
                .map_err(anyhow::Error::msg)
                .context("invalid configuration")?;
            let stop = CancellationToken::new();
            let s2 = stop.clone();
            let mut interrupted = false;
            ctrlc_handler(s2);
            let job = SimJob {
                episodes,
                duration_s: duration,
                first_index,
                load,
                board_faults,
                live,
            };
            if !json {
                println!(
                    "{:<60} {:>9} {:>7} {:>10} {:>8}",
                    "episode", "messages", "drops", "MB", "outcome"
                );
            }
            let summaries = recorder::sim::run(&cfg, &job, stop.clone(), |s, truth| {
                if json {
                    let v = serde_json::json!({"summary": s, "truth_outcome": truth.outcome});
                    println!("{v}");
                } else {
                    println!(
                        "{:<60} {:>9} {:>7} {:>10.1} {:>8}",
                        s.path.display(),
                        s.total_messages(),
                        s.total_drops(),
                        s.file_bytes as f64 / 1e6,
                        format!("{:?}", truth.outcome).to_lowercase()
                    );
                }
            })?;
            if stop.is_cancelled() {
                interrupted = true;
                tracing::warn!("interrupted: the current episode was finished cleanly");
            }
            let drops: u64 = summaries.iter().map(|s| s.total_drops()).sum();
            if drops > 0 {
                eprintln!(
                    "warning: {drops} samples were dropped; per-channel counts are in each episode"
                );
                return Ok(ExitCode::from(3));
            }
            if interrupted {
                return Ok(ExitCode::from(130));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Ctrl-C / SIGTERM / SIGHUP: stop the current episode cleanly (the file is finished and
/// indexed). Without a handler (already set, or the OS refused) the signal kills the process:
/// the episode is then recoverable with `demotape recover`, so say so.
fn ctrlc_handler(stop: CancellationToken) {
    if let Err(e) = ctrlc::set_handler(move || {
        eprintln!("stopping: finishing the current episode...");
        stop.cancel();
    }) {
        tracing::warn!(
            "no Ctrl-C handler ({e}): a signal will end the process without closing the episode"
        );
    }
}

/// The operator's client session: with endpoints to connect to it is a Zenoh *client*
/// (no listener, no scouting: it talks to the recorder or router it was pointed at and to
/// nothing else); without, a peer that finds the recorder by multicast scouting but still
/// listens nowhere.
fn client_config(z: &hal::zenoh::SessionConfig, wait_s: f64) -> anyhow::Result<zenoh::Config> {
    let mut c = z.to_zenoh()?;
    let mut set = |k: &str, v: &str| {
        c.insert_json5(k, v)
            .map_err(|e| anyhow::anyhow!("zenoh config key {k}: {e}"))
    };
    if !z.connect.is_empty() {
        set("mode", "\"client\"")?;
        set("scouting/multicast/enabled", "false")?;
        // keep trying to reach the endpoint for as long as we would wait for an answer (a
        // client otherwise gives up at once, e.g. while the recorder is still starting)
        set(
            "connect/timeout_ms",
            &((wait_s * 1000.0) as i64).to_string(),
        )?;
    } else {
        set("listen/endpoints", "[]")?;
    }
    Ok(c)
}

fn ctl(conn: CtlConn, verb: CtlVerb) -> anyhow::Result<ExitCode> {
    use recorder::service::CommandArgs;
    let mut cfg = match &conn.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if conn.config.is_none() {
        cfg.recorder.robot_id = conn.robot.clone();
    }
    let mut z = cfg.zenoh.clone();
    // a client never listens where the recorder does
    z.listen.clear();
    if !conn.connect.is_empty() {
        z.connect = conn.connect.clone();
    }
    if conn.zenoh_config.is_some() {
        z.config_file = conn.zenoh_config.clone();
    }
    let zc = client_config(&z, conn.timeout)?;
    let (name, args, watch) = match verb {
        CtlVerb::Start {
            task,
            operator,
            tags,
            note,
        } => (
            "start",
            CommandArgs {
                task,
                operator,
                tags,
                note,
                ..Default::default()
            },
            false,
        ),
        CtlVerb::Stop { outcome, note } => (
            "stop",
            CommandArgs {
                outcome,
                note,
                ..Default::default()
            },
            false,
        ),
        CtlVerb::Discard { note } => (
            "discard",
            CommandArgs {
                note,
                ..Default::default()
            },
            false,
        ),
        CtlVerb::Mark {
            outcome,
            note,
            tags,
        } => (
            "mark",
            CommandArgs {
                outcome,
                note,
                tags,
                ..Default::default()
            },
            false,
        ),
        CtlVerb::Status { watch } => ("status", CommandArgs::default(), watch),
    };
    if !(conn.timeout > 0.0 && conn.timeout <= 3600.0) {
        eprintln!("error: --timeout must be in (0, 3600] seconds");
        return Ok(ExitCode::from(2));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let prefix = cfg.control.key_prefix.clone();
    let robot = cfg.recorder.robot_id.clone();
    rt.block_on(async move {
        let session = match zenoh::open(zc).await {
            Ok(s) => s,
            Err(e) => {
                // a client that cannot reach the endpoint it was given: nobody to answer
                eprintln!(
                    "error: {name}: no recorder answered: cannot reach {} ({e})",
                    z.connect.join(", ")
                );
                return Ok(ExitCode::from(1));
            }
        };
        if watch {
            recorder::ctl::watch(&session, &prefix, &robot).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let timeout = std::time::Duration::from_secs_f64(conn.timeout);
        let r = recorder::ctl::request(&session, &prefix, &robot, name, &args, timeout).await;
        let _ = session.close().await;
        match r {
            Ok(v) => {
                if conn.json {
                    println!("{v}");
                } else if name == "status" {
                    print!("{}", recorder::ctl::render(&v));
                } else {
                    println!("{name}: ok {v}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                if conn.json {
                    println!(
                        "{}",
                        serde_json::json!({"ok": false, "error": e.to_string()})
                    );
                }
                eprintln!("error: {name}: {e}");
                Ok(ExitCode::from(1))
            }
        }
    })
}
