//! `demotape train` and `demotape eval --cv / --train-sizes`: argument parsing and reports.

use annotate::eval::{Reference, Summary};
use annotate::learn::{self, Example, TrainOptions, cv, load};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `train` and `eval --cv` share: where the episodes and their references are, and
/// how to read them.
#[derive(Args, Debug, Clone)]
pub struct LearnArgs {
    /// The annotate configuration (topics, robot, joint units): the same as `annotate
    /// --config` will use with the model. Default: the simulated robot.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Learn the outcome from the signals alone, without the rules' verdict among the
    /// figures (for a task the rules do not know, or to measure what review alone teaches).
    #[arg(long)]
    pub without_rules: bool,
    /// Seed of the fold assignment and of the learning-curve draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Episode files or directories with a reference layer (a review with corrections,
    /// `<stem>.reference.json` or `<stem>.truth.json`); one task.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Where `demotape annotate --out` / `review` wrote the sidecars (default: next to
    /// episodes).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The model file to write (JSON; replaced only once complete).
    #[arg(long)]
    pub out: PathBuf,
    /// The task's name, when the episodes' metadata names none (or several).
    #[arg(long)]
    pub task: Option<String>,
    /// Which reference layer to learn from.
    #[arg(long, value_enum, default_value_t = crate::RefKind::Auto)]
    pub reference: crate::RefKind,
    /// Folds of the model's own cross-validation, stored in the file (0: none).
    #[arg(long, default_value_t = 5)]
    pub cv: usize,
    #[command(flatten)]
    pub learn: LearnArgs,
}

fn config_of(a: &LearnArgs) -> anyhow::Result<annotate::label::AnnotateConfig> {
    Ok(a.config
        .as_deref()
        .map(annotate::label::AnnotateConfig::load)
        .transpose()?
        .unwrap_or_default())
}

fn options(
    a: &LearnArgs,
    cfg: &annotate::label::AnnotateConfig,
    task: Option<String>,
) -> TrainOptions {
    TrainOptions {
        task,
        config_hash: cfg.robot_hash(),
        uses_rules: !a.without_rules,
        seed: a.seed,
        self_cv: 0,
    }
}

/// Load every episode; those without a reference (or unreadable) are reported, not fatal.
fn examples(
    paths: &[PathBuf],
    labels: Option<&Path>,
    cfg: &annotate::label::AnnotateConfig,
    kind: Reference,
) -> anyhow::Result<Vec<(String, Example)>> {
    let arm = cfg.robot_arm()?;
    let loaded = load::load_all(paths, labels, cfg, &arm, kind);
    if loaded.is_empty() {
        anyhow::bail!("no .mcap episode found");
    }
    let mut out = Vec::new();
    for l in loaded {
        match l.example {
            Ok(e) => out.push((l.group, e)),
            Err(why) => eprintln!("skipped {}: {why}", l.path.display()),
        }
    }
    Ok(out)
}

pub fn train_cmd(t: TrainArgs) -> ExitCode {
    let cfg = match config_of(&t.learn) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let ex = match examples(&t.paths, t.labels.as_deref(), &cfg, t.reference.into()) {
        Ok(v) => v.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut opt = options(&t.learn, &cfg, t.task.clone());
    opt.self_cv = t.cv;
    let model = match learn::train(&ex, &opt) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    let write = || -> anyhow::Result<()> {
        if let Some(d) = t.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
        let tmp = t.out.with_extension("partial");
        std::fs::write(&tmp, serde_json::to_vec(&model)?)?;
        std::fs::rename(&tmp, &t.out)?;
        Ok(())
    };
    if let Err(e) = write() {
        eprintln!("error: {}: {e:#}", t.out.display());
        return ExitCode::from(1);
    }
    let f = |x: Option<f64>, prec: usize| x.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    println!(
        "model {}: task {:?}, {} episodes ({} templates), channels {}, outcome classes {}",
        t.out.display(),
        model.task,
        model.episodes.len(),
        model.templates.len(),
        model.channels.join(","),
        model
            .outcome
            .as_ref()
            .map_or("none".to_string(), |o| o.classes.join(","))
    );
    if let Some(c) = &model.cv {
        println!(
            "own {}-fold cross-validation: boundary median {} ms, recall {}, outcome accuracy {}, \
             macro-F1 {}, ECE {}",
            c.folds,
            f(c.boundary_median_ms, 1),
            f(c.recall, 3),
            f(c.accuracy, 3),
            f(c.macro_f1, 3),
            f(c.ece, 3)
        );
    }
    println!("trained in {:.2} s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

#[derive(serde::Serialize)]
struct GroupReport {
    episodes: usize,
    /// The rules alone on the same episodes.
    rules: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    kfold: Option<cv::CvReport>,
    curve: Vec<cv::CurvePoint>,
}

pub struct CvRequest<'a> {
    pub paths: &'a [PathBuf],
    pub labels: Option<&'a Path>,
    pub kind: Reference,
    pub tolerance: f64,
    pub folds: Option<usize>,
    pub sizes: &'a [usize],
    pub repeats: usize,
    pub select: cv::Selection,
    pub json: bool,
    pub learn: &'a LearnArgs,
}

/// `eval --cv K` and/or `eval --train-sizes …`, one task per directory.
pub fn cv_cmd(r: CvRequest) -> ExitCode {
    let cfg = match config_of(r.learn) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let ex = match examples(r.paths, r.labels, &cfg, r.kind) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    let mut groups: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    for (g, e) in ex {
        groups.entry(g).or_default().push(e);
    }
    let opt = options(r.learn, &cfg, None);
    let mut report: BTreeMap<String, GroupReport> = BTreeMap::new();
    for (g, v) in &groups {
        if v.len() < 2 {
            eprintln!("skipped {g}: {} episode with a reference (need 2)", v.len());
            continue;
        }
        // one task per group: a directory of several tasks is cross-validated as one
        let run = || -> anyhow::Result<GroupReport> {
            let mut o = opt.clone();
            let mut tasks: Vec<&str> = v.iter().map(|e| e.task.as_str()).collect();
            tasks.dedup();
            if tasks.len() > 1 {
                o.task = Some(format!("{g} (mixed)"));
            }
            Ok(GroupReport {
                episodes: v.len(),
                rules: cv::rules_baseline(v, r.tolerance),
                kfold: r
                    .folds
                    .map(|k| cv::kfold(v, k, &o, r.tolerance))
                    .transpose()?,
                curve: cv::learning_curve(v, r.sizes, r.repeats, r.select, &o, r.tolerance)?,
            })
        };
        match run() {
            Ok(rep) => {
                report.insert(g.clone(), rep);
            }
            Err(e) => {
                eprintln!("error: {g}: {e:#}");
                return ExitCode::from(1);
            }
        }
    }
    if report.is_empty() {
        eprintln!("error: no directory has 2 or more episodes with a reference layer");
        return ExitCode::from(1);
    }
    if r.json {
        let doc = serde_json::json!({
            "tolerance_s": r.tolerance,
            "uses_rules": !r.learn.without_rules,
            "seed": r.learn.seed,
            "groups": report,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let f = |x: Option<f64>, scale: f64, prec: usize| {
        x.map_or("-".to_string(), |v| format!("{:.*}", prec, v * scale))
    };
    println!(
        "{:<36} {:>12} {:>5} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6}",
        "group", "labeller", "eps", "med ms", "p95 ms", "recall", "acc %", "macroF1", "ECE"
    );
    let row = |g: &str, who: &str, s: &Summary| {
        println!(
            "{:<36} {:>12} {:>5} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6}",
            g,
            who,
            s.episodes,
            f(s.boundary_median_ms, 1.0, 1),
            f(s.boundary_p95_ms, 1.0, 1),
            f(s.recall, 1.0, 3),
            f(s.accuracy, 100.0, 1),
            f(s.macro_f1, 1.0, 3),
            f(s.ece, 1.0, 3)
        );
    };
    for (g, rep) in &report {
        let name = Path::new(g)
            .file_name()
            .map_or(g.clone(), |n| n.to_string_lossy().into_owned());
        row(&name, "rules", &rep.rules);
        if let Some(k) = &rep.kfold {
            row(&name, &format!("{}-fold", k.folds), &k.summary);
        }
        for p in &rep.curve {
            row(
                &name,
                &format!("k={} ×{}", p.reviewed, p.repeats),
                &p.summary,
            );
        }
    }
    println!(
        "tolerance {} s; outcome figures {} the rules' verdict",
        r.tolerance,
        if r.learn.without_rules {
            "without"
        } else {
            "with"
        }
    );
    ExitCode::SUCCESS
}
