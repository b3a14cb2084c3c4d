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
    let opts = WriterOptions {
        flush_interval: std::time::Duration::from_millis(r.flush_interval_ms),
        chunk_size: r.chunk_size_bytes,
        compression: r.compression,
    };
    let config_toml = toml::to_string(cfg).unwrap_or_default();
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
        let source = Box::new(SimSource::new(episode));
        let summary = record_episode(
            &rt,
            source,
            &path,
            &opts,
            &meta,
            crate::QueueLimits {
                messages: r.queue_max_messages,
                bytes: r.queue_max_bytes,
            },
            stop.clone(),
        )
        .with_context(|| format!("recording episode {}", path.display()))?;
        let truth_path = PathBuf::from(format!("{}.truth.json", stem.display()));
        let f = std::fs::File::create(&truth_path)
            .with_context(|| format!("writing {}", truth_path.display()))?;
        serde_json::to_writer(std::io::BufWriter::new(f), &truth)
            .with_context(|| format!("writing {}", truth_path.display()))?;
        on_episode(&summary, &truth);
        out.push(summary);
    }
    Ok(out)
}
