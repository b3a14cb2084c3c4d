//! `demotape-recorder sim`: record simulated episodes, one MCAP plus ground truth each.

use crate::config::{Config, sanitize};
use crate::record_episode;
use crate::writer::{EpisodeMeta, EpisodeSummary, WriterOptions};
use anyhow::Context;
use hal::sim::{SimEpisode, SimSource, now_ns};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// What to record.
#[derive(Clone, Debug)]
pub struct SimJob {
    pub episodes: u64,
    pub duration_s: f64,
    /// Index of the first episode (episode `i` uses seed-derived parameters for index `i`).
    pub first_index: u64,
    pub load: String,
    /// Faults to inject into simulated boards (with `sim.boards`), in every episode.
    pub board_faults: Vec<BoardFault>,
    /// Also publish the live copy ([`crate::live`]) over a Zenoh session per `[zenoh]`.
    pub live: bool,
}

/// A fault on a simulated board, `at_s` seconds into each episode.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardFault {
    pub device: String,
    pub at_s: f64,
    pub action: BoardAction,
}

#[derive(Clone, Debug, PartialEq)]
pub enum BoardAction {
    Unplug(std::time::Duration),
    Reboot,
    Stall(std::time::Duration),
}

impl std::str::FromStr for BoardFault {
    type Err = String;
    /// `DEVICE:ACTION@SECONDS`, ACTION = `unplug:SECS` | `reboot` | `stall:SECS`,
    /// e.g. `ft_right:unplug:1.5@3`.
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "{s:?}: expected DEVICE:ACTION@SECONDS with ACTION unplug:SECS, reboot or stall:SECS"
            )
        };
        let (what, at) = s.rsplit_once('@').ok_or_else(err)?;
        let at_s: f64 = at.parse().map_err(|_| err())?;
        let mut parts = what.splitn(3, ':');
        let device = parts
            .next()
            .filter(|d| !d.is_empty())
            .ok_or_else(err)?
            .to_string();
        let action = match (parts.next(), parts.next()) {
            (Some("reboot"), None) => BoardAction::Reboot,
            (Some("unplug"), Some(d)) => BoardAction::Unplug(std::time::Duration::from_secs_f64(
                d.parse().map_err(|_| err())?,
            )),
            (Some("stall"), Some(d)) => BoardAction::Stall(std::time::Duration::from_secs_f64(
                d.parse().map_err(|_| err())?,
            )),
            _ => return Err(err()),
        };
        Ok(BoardFault {
            device,
            at_s,
            action,
        })
    }
}

/// Simulated boards for the wrench and tactile devices, living across episodes.
struct Boards {
    dir: PathBuf,
    boards: Vec<(
        String,
        firmware_bridge::board::BoardSim,
        std::sync::mpsc::Sender<firmware_bridge::board::FeedItem>,
    )>,
    configs: Vec<hal::serial::SerialBoardConfig>,
}

impl Drop for Boards {
    fn drop(&mut self) {
        self.boards.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_boards(cfg: &Config, probe: &SimEpisode) -> anyhow::Result<Boards> {
    use firmware_bridge::board::{BoardSim, BoardSpec, FaultConfig, LinkConfig};
    use firmware_bridge::{ChannelInfo, ChannelKind};
    use hal::serial::{ChannelMap, ChannelUse, SerialBoardConfig};
    // one directory per run: several runs may share a process (tests)
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "demotape-boards-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let truth = probe.truth();
    let mut out = Boards {
        dir: dir.clone(),
        boards: Vec::new(),
        configs: Vec::new(),
    };
    let mut devices: Vec<String> = Vec::new();
    for s in probe.streams() {
        if cfg.sim.boards.sensors()
            && matches!(s.modality, hal::Modality::Wrench | hal::Modality::Tactile)
            && !devices.contains(&s.device)
        {
            devices.push(s.device.clone());
        }
    }
    for (i, device) in devices.iter().enumerate() {
        let streams: Vec<&hal::StreamSpec> = probe
            .streams()
            .iter()
            .filter(|s| &s.device == device)
            .collect();
        let mut chans = Vec::new();
        let mut maps = Vec::new();
        for s in &streams {
            let (ch, kind, use_, n_values, rows, cols, frame_id) = match s.modality {
                hal::Modality::Wrench => {
                    let side = if s.topic.contains("/left/") {
                        "left"
                    } else {
                        "right"
                    };
                    (
                        0u8,
                        ChannelKind::Wrench,
                        ChannelUse::Wrench,
                        6u16,
                        1u8,
                        6u8,
                        format!("{side}_ft_sensor"),
                    )
                }
                _ => {
                    let pad = s.topic.trim_start_matches("/tactile/").to_string();
                    let ch = hal::sim::PADS
                        .iter()
                        .position(|p| pad.ends_with(p))
                        .unwrap_or(0) as u8;
                    let (r, c) = (cfg.sim.tactile_rows, cfg.sim.tactile_cols);
                    (
                        ch,
                        ChannelKind::Tactile,
                        ChannelUse::Tactile,
                        (r * c) as u16,
                        r as u8,
                        c as u8,
                        pad,
                    )
                }
            };
            chans.push(ChannelInfo {
                id: ch,
                kind,
                rate_hz: s.rate_hz as u16,
                n_values,
                rows,
                cols,
            });
            maps.push(ChannelMap {
                channel: ch,
                kind: use_,
                topic: s.topic.clone(),
                frame_id,
                rate_hz: s.rate_hz,
                rows: u32::from(rows),
                cols: u32::from(cols),
                taxel_size: if use_ == ChannelUse::Tactile {
                    hal::sim::TAXEL as f32
                } else {
                    0.0
                },
                joint_names: Vec::new(),
            });
        }
        let clock = truth
            .devices
            .iter()
            .find(|d| &d.device == device)
            .cloned()
            .context("device clock")?;
        let link = dir.join(sanitize(device));
        let (tx, rx) = std::sync::mpsc::channel();
        let spec = BoardSpec {
            board_id: i as u16 + 1,
            name: device.clone(),
            channels: chans,
            fw: (1, 0),
        };
        let faults = FaultConfig {
            seed: cfg.sim.seed ^ i as u64,
            ..Default::default()
        };
        let board = BoardSim::start(
            spec,
            &link,
            LinkConfig::default(),
            faults,
            Box::new(move || clock.counter_us(now_ns())),
            rx,
        )
        .with_context(|| format!("starting simulated board {device}"))?;
        out.configs.push(SerialBoardConfig {
            path: link,
            baud: 921_600,
            device: device.clone(),
            channels: maps,
            reconnect_ms: 50,
        });
        out.boards.push((device.clone(), board, tx));
    }
    // camera-trigger boards: one trigger channel (line 0), pulses at the camera rate
    for (j, tb) in cfg.sim.boards.triggers().into_iter().enumerate() {
        let i = devices.len() + j;
        let clock = truth
            .devices
            .iter()
            .find(|d| d.device == tb.name)
            .cloned()
            .context("trigger board clock")?;
        let link = dir.join(sanitize(&tb.name));
        let (tx, rx) = std::sync::mpsc::channel();
        let spec = BoardSpec {
            board_id: i as u16 + 1,
            name: tb.name.clone(),
            channels: vec![ChannelInfo {
                id: 0,
                kind: ChannelKind::Trigger,
                rate_hz: cfg.sim.camera_rate_hz as u16,
                n_values: 0,
                rows: 0,
                cols: 0,
            }],
            fw: (1, 0),
        };
        let board = BoardSim::start(
            spec,
            &link,
            // a pulse goes out at once (a UART or an interrupt endpoint, not bulk batching),
            // and heartbeats come often: the board's clock fit rests on them between pulses
            LinkConfig {
                usb_frame_us: 0,
                heartbeat: std::time::Duration::from_millis(5),
                ..Default::default()
            },
            FaultConfig {
                seed: cfg.sim.seed ^ i as u64,
                ..Default::default()
            },
            Box::new(move || clock.counter_us(now_ns())),
            rx,
        )
        .with_context(|| format!("starting simulated trigger board {}", tb.name))?;
        out.configs.push(SerialBoardConfig {
            path: link,
            baud: 921_600,
            device: tb.name.clone(),
            channels: vec![ChannelMap {
                channel: 0,
                kind: ChannelUse::Trigger,
                topic: format!("/trigger/{}/line0", sanitize(&tb.name)),
                frame_id: tb.name.clone(),
                rate_hz: cfg.sim.camera_rate_hz,
                rows: 0,
                cols: 0,
                taxel_size: 0.0,
                joint_names: Vec::new(),
            }],
            reconnect_ms: 50,
        });
        out.boards.push((tb.name.clone(), board, tx));
    }
    Ok(out)
}

/// `[[sync.triggers]]` for the simulated trigger boards' cameras, with their exposure.
fn sim_trigger_entries(sim: &hal::sim::SimConfig) -> Vec<crate::timing::TriggerEntry> {
    let mut out = Vec::new();
    for tb in sim.boards.triggers() {
        let cams = if tb.cameras.is_empty() {
            &sim.rgb_cameras
        } else {
            &tb.cameras
        };
        for c in cams {
            out.push(crate::timing::TriggerEntry {
                camera: format!("camera_{c}"),
                board: tb.name.clone(),
                line: 0,
                exposure_offset_us: tb.exposure_offset_us,
                exposure_us: tb.exposure_us,
                min_latency_ms: 0.0,
                max_latency_ms: None,
                lock_after: 3,
            });
        }
    }
    out
}

/// `<out>/<robot>/<robot>_<UTC start>_<seq>`; all components sanitized.
pub fn episode_stem(out: &Path, robot: &str, start_ns: u64, seq: u64) -> PathBuf {
    let robot = sanitize(robot);
    let t = chrono::DateTime::from_timestamp_nanos(start_ns as i64);
    out.join(&robot)
        .join(format!("{robot}_{}_{seq:04}", t.format("%Y%m%dT%H%M%SZ")))
}

/// Record `job.episodes` simulated episodes. Returns each episode's summary; stops early
/// (after finishing the current episode cleanly) when `stop` is cancelled.
pub fn run(
    cfg: &Config,
    job: &SimJob,
    stop: CancellationToken,
    mut on_episode: impl FnMut(&EpisodeSummary, &hal::sim::Truth),
) -> anyhow::Result<Vec<EpisodeSummary>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let r = &cfg.recorder;
    let dir = r.out_dir.join(sanitize(&r.robot_id));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating output directory {}", dir.display()))?;
    let mut opts = WriterOptions::from_config(r);
    opts.ptp = cfg.sync.ptp.clone();
    let config_toml = toml::to_string(cfg).unwrap_or_default();
    let live = if job.live {
        let session = rt
            .block_on(cfg.zenoh.open())
            .context("opening the Zenoh session for --live (see [zenoh] in the config)")?;
        tracing::info!(zid = %session.zid(), mode = %cfg.zenoh.mode, "zenoh session open");
        let mut hub = crate::live::LiveHub::start(
            session,
            &cfg.control.key_prefix,
            &r.robot_id,
            cfg.live.clone(),
        )?;
        // no service here: the episodes report their own status, as `run` does
        hub.publish_status_every(std::time::Duration::from_millis(
            cfg.control.status_period_ms,
        ));
        Some(hub)
    } else {
        None
    };
    let boards = if cfg.sim.boards.any() {
        let probe = SimEpisode::new(&cfg.sim, job.first_index, 0.1, now_ns());
        Some(start_boards(cfg, &probe)?)
    } else {
        None
    };
    // triggered cameras: as configured, else every simulated trigger board's own cameras
    let mut boards_cfg: Vec<hal::serial::SerialBoardConfig> = cfg.serial.clone();
    if let Some(b) = &boards {
        boards_cfg.extend(b.configs.iter().cloned());
    }
    let entries = if cfg.sync.triggers.is_empty() {
        sim_trigger_entries(&cfg.sim)
    } else {
        cfg.sync.triggers.clone()
    };
    opts.triggers =
        crate::timing::resolve_triggers(&entries, &boards_cfg).map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    for i in 0..job.episodes {
        if stop.is_cancelled() {
            break;
        }
        let index = job.first_index + i;
        let t0 = now_ns();
        let episode = SimEpisode::new(&cfg.sim, index, job.duration_s, t0);
        let truth = episode.truth();
        let stem = episode_stem(&r.out_dir, &r.robot_id, t0, index);
        let path = PathBuf::from(format!("{}.mcap", stem.display()));
        let meta = EpisodeMeta {
            robot_id: r.robot_id.clone(),
            episode_id: stem
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sequence: index,
            task: r.task.clone(),
            operator: r.operator.clone(),
            source: "sim".into(),
            start_ns: t0,
            config_toml: config_toml.clone(),
            extra: BTreeMap::from([
                ("sim.seed".to_string(), cfg.sim.seed.to_string()),
                ("sim.episode_index".to_string(), index.to_string()),
                ("sim.load".to_string(), job.load.clone()),
                ("sim.duration_s".to_string(), job.duration_s.to_string()),
            ]),
        };
        tracing::info!(path = %path.display(), index, "recording episode");
        let mut sim = SimSource::new(episode);
        let mut sources: Vec<Box<dyn hal::Source>> = Vec::new();
        let mut fault_timer = None;
        if let Some(b) = boards.as_ref() {
            for (device, board, feed) in &b.boards {
                sim.route_device(device, feed.clone());
                sim.wait_for(board.streaming_flag());
            }
            let plan: Vec<(
                f64,
                std::sync::mpsc::Sender<firmware_bridge::board::Control>,
                BoardAction,
            )> = job
                .board_faults
                .iter()
                .filter_map(|f| {
                    b.boards
                        .iter()
                        .find(|x| x.0 == f.device)
                        .map(|x| (f.at_s, x.1.controller(), f.action.clone()))
                })
                .collect();
            if !plan.is_empty() {
                let t = stop.child_token();
                let t2 = t.clone();
                let h = std::thread::spawn(move || {
                    let start = std::time::Instant::now();
                    let mut plan = plan;
                    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
                    for (at, ctl, action) in plan {
                        while start.elapsed().as_secs_f64() < at {
                            if t2.is_cancelled() {
                                return;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                        use firmware_bridge::board::Control;
                        let _ = ctl.send(match action {
                            BoardAction::Unplug(d) => Control::Unplug(d),
                            BoardAction::Reboot => Control::Reboot,
                            BoardAction::Stall(d) => Control::Stall(d),
                        });
                    }
                });
                fault_timer = Some((t, h));
            }
        }
        sources.push(Box::new(sim));
        if let Some(b) = boards.as_ref() {
            for c in &b.configs {
                sources.push(Box::new(hal::serial::SerialSource::new(c.clone())));
            }
        }
        for c in &cfg.serial {
            sources.push(Box::new(hal::serial::SerialSource::new(c.clone())));
        }
        let summary = record_episode(
            &rt,
            sources,
            &path,
            &opts,
            &meta,
            crate::QueueLimits {
                messages: r.queue_max_messages,
                bytes: r.queue_max_bytes,
            },
            stop.clone(),
            live.as_ref(),
        )
        .with_context(|| format!("recording episode {}", path.display()));
        if let Some((t, h)) = fault_timer {
            t.cancel();
            let _ = h.join();
        }
        let summary = summary?;
        let truth_path = PathBuf::from(format!("{}.truth.json", stem.display()));
        let f = std::fs::File::create(&truth_path)
            .with_context(|| format!("writing {}", truth_path.display()))?;
        serde_json::to_writer(std::io::BufWriter::new(f), &truth)
            .with_context(|| format!("writing {}", truth_path.display()))?;
        on_episode(&summary, &truth);
        out.push(summary);
    }
    if let Some(l) = &live {
        tracing::info!(counters = ?l.counters(), "live copy");
    }
    Ok(out)
}
