//! Training examples from episode files: their signals (through [`crate::signals`]), the
//! rules' segmentation, the model's series, and a reference layer (through
//! [`crate::eval::reference`]).

use super::Example;
use crate::eval::Reference;
use crate::label::AnnotateConfig;
use std::path::{Path, PathBuf};

/// An episode ready for learning or cross-validation; `example` is `None` (with why) when it
/// has no reference layer or its signals cannot be read.
pub struct Loaded {
    pub path: PathBuf,
    /// Its directory: a dataset, a task.
    pub group: String,
    pub example: Result<Example, String>,
}

/// The task an episode's metadata names (`demotape.episode` → `task`), empty if none.
pub fn task_of(meta: &crate::read::Metadata) -> String {
    meta.get("demotape.episode")
        .and_then(|m| m.get("task"))
        .cloned()
        .unwrap_or_default()
}

/// Read one episode as an example.
pub fn example(
    path: &Path,
    labels_dir: Option<&Path>,
    config: &AnnotateConfig,
    arm: &hal::robot::RobotArm,
    kind: Reference,
) -> Result<Example, String> {
    let reference = crate::eval::reference(path, labels_dir, kind)
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| "no reference layer (review, reference.json or truth.json)".to_string())?;
    let (signals, _, meta) =
        crate::signals::read_signals(path, &config.signals, arm).map_err(|e| format!("{e:#}"))?;
    let rules = crate::segment::segment(&signals, arm.kin.as_ref());
    Ok(Example {
        name: path.display().to_string(),
        task: task_of(&meta),
        series: super::features::series(&signals, arm.kin.as_ref()),
        duration_s: signals.duration_s,
        rules,
        phases: reference.phases,
        outcome: reference.outcome.filter(|o| o != "none"),
    })
}

/// Every episode under `paths` (in parallel over the machine's cores), in path order.
pub fn load_all(
    paths: &[PathBuf],
    labels_dir: Option<&Path>,
    config: &AnnotateConfig,
    arm: &hal::robot::RobotArm,
    kind: Reference,
) -> Vec<Loaded> {
    let files = crate::label::collect(paths);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::with_capacity(files.len()));
    std::thread::scope(|sc| {
        for _ in 0..workers.min(files.len()).max(1) {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    let ex = example(f, labels_dir, config, arm, kind);
                    let group = f
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    out.lock().unwrap_or_else(|p| p.into_inner()).push((
                        i,
                        Loaded {
                            path: f.clone(),
                            group,
                            example: ex,
                        },
                    ));
                }
            });
        }
    });
    let mut v = out.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, l)| l).collect()
}
